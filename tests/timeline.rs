//! The job's timeline, end to end: each delivery, create, release and sweeper deletion logs
//! one line with what it knows about the job, and none of it costs a GitHub or ARM call.

mod common;

use common::*;
use serde_json::Value;

/// A `workflow_job` delivery of GitHub's fixture for `action`, for job `id`, with labels this
/// deployment serves, created `created` and started `started` (RFC 3339), run by `runner`.
fn delivery(action: &str, id: u64, runner: Option<&str>, created: &str, started: Option<&str>) -> Delivery {
    let mut v: Value = serde_json::from_slice(include_bytes!("data/workflow_job__in_progress.payload.json")).unwrap();
    v["action"] = action.into();
    let j = &mut v["workflow_job"];
    j["id"] = id.into();
    j["status"] = action.into();
    j["labels"] = serde_json::json!(["self-hosted", "aci"]);
    j["runner_name"] = runner.map(Value::from).unwrap_or(Value::Null);
    j["created_at"] = created.into();
    j["started_at"] = started.unwrap_or(created).into();
    if action == "completed" {
        j["conclusion"] = "success".into();
        j["completed_at"] = minutes_ago(0).into();
    }
    Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap())
}

/// `t` (RFC 3339) plus `seconds`.
fn later(t: &str, seconds: i64) -> String {
    let t = aci_runners::clock::parse_rfc3339(t).unwrap();
    aci_runners::clock::rfc3339(t + time::Duration::seconds(seconds))
}

/// The handler's line that starts with `event` and holds `needle`.
fn line(ctx: &Ctx, event: &str, needle: &str) -> String {
    ctx.logs()
        .lines()
        .find(|l| l.starts_with(event) && l.contains(needle))
        .unwrap_or_else(|| panic!("no {event} line with {needle}:\n{}", ctx.logs()))
        .to_string()
}

/// A field's value in a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[tokio::test]
async fn a_jobs_life_is_four_lines_and_no_extra_call() {
    run_test(World::new(), async |ctx| {
        let created = minutes_ago(3);
        ctx.deliver(delivery("queued", 4242, None, &created, None)).await.expect_status(202);
        ctx.expect_log(&format!(
            "job.queued repository=Codertocat/Hello-World job=4242 run=2202229078 attempt=1 created_at={created} lag_s="
        ))
        .await;
        let queued = line(ctx, "job.queued", "job=4242");
        assert!(
            queued.ends_with(" workflow=CodeQL name=\"Analyze (javascript)\" labels=self-hosted,aci"),
            "{queued}"
        );
        let lag: i64 = field(&queued, "lag_s").unwrap().parse().unwrap();
        assert!((170..=200).contains(&lag), "created three minutes ago: {queued}");
        ctx.expect_queued(1);
        assert_eq!(ctx.drain().await, 1);
        ctx.expect_log("result=created repository=Codertocat/Hello-World job=4242").await;
        let created_line = line(ctx, "provision", "result=created");
        assert_eq!(field(&created_line, "created_at"), Some(created.as_str()));
        let since: i64 = field(&created_line, "since_created_s").unwrap().parse().unwrap();
        assert!((170..=200).contains(&since), "{created_line}");

        // in_progress is read now, and still enqueues nothing.
        let started = later(&created, 120);
        ctx.deliver(delivery("in_progress", 4242, Some("aci-runner-4242"), &created, Some(&started)))
            .await
            .expect_status(200);
        ctx.expect_queued(0);
        ctx.expect_log("job.started repository=Codertocat/Hello-World job=4242").await;
        let s = line(ctx, "job.started", "job=4242");
        assert_eq!(field(&s, "runner"), Some("aci-runner-4242"));
        assert_eq!(field(&s, "ours"), Some("true"));
        assert_eq!(field(&s, "wait_s"), Some("120"), "created_at to started_at: {s}");
        assert_eq!(field(&s, "runner_made_for"), None, "{s}");

        ctx.deliver(delivery("completed", 4242, Some("aci-runner-4242"), &created, Some(&started)))
            .await
            .expect_status(202);
        ctx.expect_log("job.completed repository=Codertocat/Hello-World job=4242").await;
        let c = line(ctx, "job.completed", "job=4242");
        assert_eq!(field(&c, "conclusion"), Some("success"));
        let run: i64 = field(&c, "run_s").unwrap().parse().unwrap();
        assert!((55..=70).contains(&run), "{c}");
        ctx.expect_queued(1);
        assert_eq!(ctx.drain().await, 1);
        ctx.expect_log("group.deleted by=release reason=completed name=aci-runner-4242")
            .await;
        let d = line(ctx, "group.deleted", "name=aci-runner-4242");
        assert_eq!(field(&d, "repository"), Some("Codertocat/Hello-World"));
        assert_eq!((field(&d, "job"), field(&d, "ran_job")), (Some("4242"), Some("4242")));
        assert_eq!((field(&d, "cpu"), field(&d, "memory_gb")), (Some("2"), Some("4")), "{d}");
        assert!(field(&d, "lifetime_s").is_some(), "{d}");

        // Exactly the calls the life of a job made before the timeline.
        assert_eq!(ctx.github().c.calls, ["jit", "list-runners", "delete-runner"]);
        let arm = ctx.arm();
        assert_eq!(
            (arm.c.count("list"), arm.c.count("put"), arm.c.count("get"), arm.c.count("delete")),
            (1, 1, 1, 1)
        );
    })
    .await;
}

#[tokio::test]
async fn a_job_on_a_runner_made_for_another_job_says_so() {
    run_test(World::new(), async |ctx| {
        let created = minutes_ago(2);
        ctx.deliver(delivery("in_progress", 100, Some("aci-runner-99"), &created, Some(&minutes_ago(1))))
            .await
            .expect_status(200)
            .expect_json(serde_json::json!({"ignored": "action in_progress is not handled"}));
        ctx.expect_log("job.started repository=Codertocat/Hello-World job=100").await;
        let s = line(ctx, "job.started", "job=100");
        assert_eq!(field(&s, "runner_made_for"), Some("99"), "{s}");
        assert!(ctx.github().c.calls.is_empty(), "no GitHub call for a line");
        assert_eq!(ctx.arm().c.calls.len(), 0, "no ARM call for a line");
    })
    .await;
}

#[tokio::test]
async fn jobs_that_are_none_of_ours_log_no_timeline() {
    run_test(World::new(), async |ctx| {
        // GitHub's fixture: a GitHub-hosted job on `GitHub Actions 5`.
        let body = include_bytes!("data/workflow_job__in_progress.payload.json");
        ctx.deliver(Delivery::new("workflow_job", body.to_vec())).await.expect_status(200);
        ctx.deliver(queued(1)).await.expect_status(202);
        ctx.expect_log("job.queued repository=Codertocat/Hello-World job=1 ").await;
        assert!(!ctx.logs().contains("job.started"), "{}", ctx.logs());
        ctx.expect_queued(1);
        assert_eq!(ctx.drain().await, 1);
    })
    .await;
}

#[tokio::test]
async fn the_sweeper_logs_what_each_group_it_deleted_cost() {
    run_test(World::new(), async |ctx| {
        ctx.deliver(delivery("queued", 77, None, &minutes_ago(30), None))
            .await
            .expect_status(202);
        assert_eq!(ctx.drain().await, 1);
        {
            // The container exited without a job (say its image would not start).
            let mut arm = ctx.arm();
            arm.settle();
            arm.groups.get_mut("aci-runner-77").unwrap().instance_state = Some("Failed".into());
        }
        ctx.github().job(77, "completed");
        ctx.github().c.calls.clear();
        ctx.arm().c.calls.clear();
        ctx.sweep().await;
        let d = line(ctx, "group.deleted", "name=aci-runner-77");
        assert_eq!(field(&d, "by"), Some("sweep"));
        assert_eq!(field(&d, "reason"), Some("terminated"));
        assert_eq!(field(&d, "job"), Some("77"));
        assert_eq!((field(&d, "cpu"), field(&d, "memory_gb")), (Some("2"), Some("4")), "{d}");
        assert!(ctx.sweep_summary().contains("deleted_terminated=1"), "{}", ctx.sweep_summary());
        // The sweep made the calls it always made: no read for the line.
        assert_eq!(
            ctx.github().c.calls,
            ["list-runners", "delete-runner", "get-job", "list-runs"],
            "list, deregister, is its job still queued, reconcile"
        );
        assert_eq!(ctx.arm().c.calls, ["list", "get", "delete"], "list, its state, delete");
    })
    .await;
}
