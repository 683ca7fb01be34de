//! The sweeper through the fake host's timer: nothing left behind, nothing busy killed.

mod common;

use common::fakes::Fault;
use common::net::Resp;
use common::*;
use serde_json::json;
use time::OffsetDateTime;

const REPO: &str = "repos/octo-org/octo-repo";

fn minutes_ago(m: i64) -> String {
    aci_runners::clock::rfc3339(OffsetDateTime::now_utc() - time::Duration::minutes(m))
}

fn summary(b: &Bench) -> String {
    b.host()
        .logs()
        .lines()
        .find(|l| l.starts_with("sweep groups="))
        .unwrap_or_default()
        .to_string()
}

async fn tick(b: &Bench) {
    let (status, body) = b.host().timer("sweep", json!(null), false).await;
    assert_eq!(status, 200, "{body}");
}

/// Groups in every state, an unmanaged group, ghosts and a stranger's runner.
fn seed(b: &Bench) {
    let mut arm = b.arm.lock().unwrap();
    arm.seed("aci-runner-1", true, "Succeeded", Some("Succeeded"), &minutes_ago(5)); // exited
    arm.seed("aci-runner-2", true, "Failed", None, &minutes_ago(5)); // ARM gave up
    arm.seed("aci-runner-3", true, "Succeeded", Some("Running"), &minutes_ago(400)); // past lifetime, busy
    arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &minutes_ago(30)); // idle
    arm.seed("aci-runner-5", true, "Succeeded", Some("Running"), &minutes_ago(30)); // busy
    arm.seed("aci-runner-6", true, "Succeeded", Some("Running"), &minutes_ago(5)); // booting
    arm.seed("aci-runner-7", true, "Succeeded", Some("Running"), &minutes_ago(30)); // idle, no registration
    arm.seed("aci-runner-8", false, "Succeeded", Some("Succeeded"), &minutes_ago(9000)); // not ours to touch
    drop(arm);
    let mut gh = b.github.lock().unwrap();
    gh.add_runner(REPO, "aci-runner-1", "offline", false);
    gh.add_runner(REPO, "aci-runner-3", "online", true);
    gh.add_runner(REPO, "aci-runner-4", "online", false);
    gh.add_runner(REPO, "aci-runner-5", "online", true);
    gh.add_runner(REPO, "aci-runner-6", "offline", false);
    gh.add_runner(REPO, "aci-runner-777", "offline", false); // ghost, job done
    gh.add_runner(REPO, "aci-runner-778", "offline", false); // job still queued: mid-provisioning
    gh.add_runner(REPO, "build-box", "offline", false); // a stranger's runner
    gh.jobs.insert(777, "completed".into());
    gh.jobs.insert(778, "queued".into());
}

#[tokio::test]
async fn exactly_the_right_deletions_in_the_right_order() {
    let b = Bench::start(&[]).await;
    seed(&b);
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    {
        let arm = b.arm.lock().unwrap();
        let left: Vec<&str> = arm.groups.keys().map(String::as_str).collect();
        assert_eq!(left, ["aci-runner-5", "aci-runner-6", "aci-runner-8"]);
        let gh = b.github.lock().unwrap();
        let mut runners: Vec<&str> = gh.runners.values().map(|r| r.name.as_str()).collect();
        runners.sort();
        // GitHub refuses to remove a busy runner (422); its group past the lifetime cap is
        // deleted anyway and the registration goes offline with it.
        assert_eq!(
            runners,
            ["aci-runner-3", "aci-runner-5", "aci-runner-6", "aci-runner-778", "build-box"]
        );
        assert!(arm.c.seq_of("delete aci-runner-3").is_some());
        for n in [1, 4] {
            let dereg = gh.c.seq_of(&format!("delete-runner aci-runner-{n}")).unwrap();
            let delete = arm.c.seq_of(&format!("delete aci-runner-{n}")).unwrap();
            assert!(dereg < delete, "runner {n} is deregistered before its group is deleted");
        }
        assert_eq!(gh.c.count("get-job"), 2, "one lookup per ghost candidate (777, 778)");
        assert_eq!(
            arm.c.count("get"),
            6,
            "states read for the managed groups the list did not show failed"
        );
    }
    assert_eq!(
        summary(&b),
        "sweep groups=7 runners=7 deleted_terminated=2 deleted_lifetime=1 deleted_idle=2 deregistered_ghosts=1 kept=0 requeued=0 failed=0 dry_run=false past_due=false"
    );
    b.stop().await;
}

#[tokio::test]
async fn dry_run_reports_and_changes_nothing() {
    let b = Bench::start(&[("DRY_RUN", "true")]).await;
    seed(&b);
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    assert_eq!(b.arm.lock().unwrap().groups.len(), 8);
    assert_eq!(b.github.lock().unwrap().runners.len(), 8);
    assert!(b.arm.lock().unwrap().c.writes.is_empty() && b.github.lock().unwrap().c.writes.is_empty());
    assert!(
        summary(&b).contains("deleted_terminated=2 deleted_lifetime=1 deleted_idle=2 deregistered_ghosts=1"),
        "{}",
        summary(&b)
    );
    assert!(summary(&b).contains("dry_run=true"));
    b.host()
        .wait_log("sweep.would-delete plan=\"reason=idle deregister=aci-runner-4 (octo-org/octo-repo) delete=aci-runner-4\"")
        .await;
    b.stop().await;
}

#[tokio::test]
async fn the_timer_envelope_with_a_status_object_and_past_due() {
    let b = Bench::start(&[]).await;
    let status =
        json!({"Last": "2026-11-28T10:15:00+00:00", "Next": "2026-11-28T10:20:00+00:00", "LastUpdated": "2026-11-28T10:16:00+00:00"});
    let (code, body) = b.host().timer("sweep", status, true).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["Outputs"].is_object() && v["Logs"].is_array());
    b.host().wait_log("past_due=true").await;
    assert!(summary(&b).starts_with("sweep groups=0 runners=0"), "{}", summary(&b));
    b.stop().await;
}

#[tokio::test]
async fn more_than_a_hundred_groups_and_runners_are_paged() {
    let b = Bench::start(&[]).await;
    {
        let mut arm = b.arm.lock().unwrap();
        for i in 0..150 {
            arm.seed(&format!("aci-runner-{}", 10_000 + i), true, "Failed", None, &minutes_ago(3));
        }
        let mut gh = b.github.lock().unwrap();
        for i in 0..130 {
            gh.add_runner(REPO, &format!("aci-runner-{}", 20_000 + i), "offline", false);
        }
    }
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    assert_eq!(summary(&b), "sweep groups=150 runners=130 deleted_terminated=150 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=130 kept=0 requeued=0 failed=0 dry_run=false past_due=false");
    {
        let arm = b.arm.lock().unwrap();
        assert!(arm.groups.is_empty());
        assert_eq!(arm.c.count("list"), 2, "two pages via nextLink");
        assert_eq!(arm.c.count("get"), 0, "failed groups need no state read");
        let gh = b.github.lock().unwrap();
        assert!(gh.runners.is_empty());
        assert_eq!(gh.c.count("list-runners"), 2, "two pages via Link");
    }
    b.stop().await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_failures_wait_for_the_next_run() {
    let b = Bench::start(&[]).await;
    seed(&b);
    {
        let mut arm = b.arm.lock().unwrap();
        arm.c.faults.push(Fault {
            only: None,
            op: "list",
            times: 1,
            resp: Resp::json(429, json!({"error": {"code": "TooManyRequests", "message": "slow down"}}))
                .with_header("x-ms-retry-after-ms", "1"),
        });
        arm.c.faults.push(Fault {
            only: None,
            op: "get",
            times: 2,
            resp: Resp::json(500, json!({"error": {"code": "InternalServerError", "message": "oops"}})),
        });
        // Every try of one delete fails (RETRY_MAX_ATTEMPTS=3).
        arm.c.faults.push(Fault {
            only: Some("aci-runner-7"),
            op: "delete",
            times: 3,
            resp: Resp::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "later"}})),
        });
    }
    b.github.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "list-runners",
        times: 1,
        resp: Resp::json(502, json!({"message": "Server Error"})),
    });
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    let first = summary(&b);
    assert!(first.contains("failed=1"), "one delete failed for good: {first}");
    assert_eq!(
        b.arm.lock().unwrap().groups.len(),
        4,
        "one of the five deletions is left for the next run"
    );
    tick(&b).await;
    b.host()
        .wait_log("sweep groups=3 runners=4 deleted_terminated=0 deleted_lifetime=0 deleted_idle=1 ")
        .await;
    let left: Vec<String> = b.arm.lock().unwrap().groups.keys().cloned().collect();
    assert_eq!(
        left,
        ["aci-runner-5", "aci-runner-6", "aci-runner-8"],
        "aci-runner-7 went on the second run"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_runner_that_just_took_a_job_keeps_its_idle_group() {
    let b = Bench::start(&[]).await;
    {
        let mut arm = b.arm.lock().unwrap();
        arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &minutes_ago(30));
        arm.seed("aci-runner-3", true, "Succeeded", Some("Running"), &minutes_ago(400));
        let mut gh = b.github.lock().unwrap();
        gh.add_runner(REPO, "aci-runner-4", "online", false);
        gh.add_runner(REPO, "aci-runner-3", "online", false);
        // Between the list and the delete both runners take a job: GitHub answers 422.
        gh.c.faults.push(Fault {
            only: None,
            op: "delete-runner",
            times: 2,
            resp: Resp::json(422, json!({"message": "Bad request - Runner is still running a job"})),
        });
    }
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    {
        let arm = b.arm.lock().unwrap();
        assert!(arm.groups.contains_key("aci-runner-4"), "idle group kept when deregistering fails");
        assert!(
            !arm.groups.contains_key("aci-runner-3"),
            "a group past its lifetime is deleted anyway"
        );
    }
    assert!(
        summary(&b).contains("deleted_lifetime=1 deleted_idle=0 deregistered_ghosts=0 kept=1 requeued=0 failed=0"),
        "{}",
        summary(&b)
    );
    b.stop().await;
}

#[tokio::test]
async fn org_scope_lists_the_organization_and_leaves_ghosts() {
    let b = Bench::start(&[("RUNNER_SCOPE", "org"), ("ALLOWED_OWNERS", "acme")]).await;
    {
        let mut arm = b.arm.lock().unwrap();
        arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &minutes_ago(30));
        arm.groups
            .get_mut("aci-runner-4")
            .unwrap()
            .tags
            .insert("github-owner".into(), "octo-org".into());
        let mut gh = b.github.lock().unwrap();
        gh.add_runner("orgs/octo-org", "aci-runner-4", "online", false);
        gh.add_runner("orgs/octo-org", "aci-runner-99", "offline", false);
        gh.add_runner("orgs/acme", "aci-runner-98", "offline", false);
    }
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    assert!(b.arm.lock().unwrap().groups.is_empty());
    {
        let gh = b.github.lock().unwrap();
        let mut left: Vec<&str> = gh.runners.values().map(|r| r.name.as_str()).collect();
        left.sort();
        assert_eq!(left, ["aci-runner-98", "aci-runner-99"], "org-scope ghosts are left to GitHub");
        assert_eq!(gh.c.count("list-runners"), 2, "octo-org from the tag, acme from ALLOWED_OWNERS");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_sweep_cli_prints_the_plan_and_deletes_only_with_yes() {
    let b = Bench::new(&[]).await;
    seed(&b);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
            .args(args)
            .env_clear()
            .envs(&b.settings)
            .output()
            .unwrap()
    };
    let refused = tokio::task::block_in_place(|| run(&["sweep"]));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --dry-run to see the plan, or --yes"));

    let plan = tokio::task::block_in_place(|| run(&["sweep", "--dry-run"]));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{out}\n{}", String::from_utf8_lossy(&plan.stderr));
    assert!(
        out.contains("idle       deregister runner aci-runner-4 (octo-org/octo-repo), then delete group aci-runner-4: would do"),
        "{out}"
    );
    assert!(
        out.contains("ghost      deregister runner aci-runner-777 (octo-org/octo-repo): would do"),
        "{out}"
    );
    assert!(
        out.contains(
            "deleted_terminated=2 deleted_lifetime=1 deleted_idle=2 deregistered_ghosts=1 kept=0 requeued=0 failed=0 dry_run=true"
        ),
        "{out}"
    );
    assert_eq!(b.arm.lock().unwrap().groups.len(), 8, "a dry run deletes nothing");

    let done = tokio::task::block_in_place(|| run(&["sweep", "--yes"]));
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(b.arm.lock().unwrap().groups.len(), 3);
    b.stop().await;
}

#[tokio::test]
async fn a_job_whose_container_died_before_it_started_gets_another_runner() {
    let b = Bench::start(&[]).await;
    // A webhook runner made for job 4242: its container exited (an image that would not pull)
    // while the job is still queued; another one whose job has since run elsewhere.
    b.deliver("workflow_job", &queued_payload(4242, &["self-hosted", "aci"])).await;
    b.deliver("workflow_job", &queued_payload(4243, &["self-hosted", "aci"])).await;
    b.host().drain().await;
    {
        let mut arm = b.arm.lock().unwrap();
        for n in ["aci-runner-4242", "aci-runner-4243"] {
            arm.groups.get_mut(n).unwrap().instance_state = Some("Failed".into());
        }
        let mut gh = b.github.lock().unwrap();
        gh.jobs.insert(4242, "queued".into());
        gh.jobs.insert(4243, "completed".into());
    }
    tick(&b).await;
    b.host().wait_log("sweep groups=").await;
    assert!(
        summary(&b).contains("deleted_terminated=2 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=0 kept=0 requeued=1 failed=0"),
        "{}",
        summary(&b)
    );
    assert_eq!(b.host().queued("runner-requests").len(), 1, "the sweep's queue output");
    b.host().drain().await;
    {
        let arm = b.arm.lock().unwrap();
        let left: Vec<&str> = arm.groups.keys().map(String::as_str).collect();
        assert_eq!(left, ["aci-runner-4242"], "a fresh group for the job still queued");
        assert_eq!(arm.groups["aci-runner-4242"].instance_state.as_deref(), Some("Running"));
    }
    b.stop().await;
}
