//! Warm runners end to end: the sweeper keeps a floor of idle runners per target, a queued job
//! lands on one at once (GitHub's fake hands a queued job to an idle online runner of matching
//! labels, as GitHub does), and the job's own create replaces it.

mod common;

use common::fakes::{Fault, JIT_SUFFIX};
use common::net::Resp;
use common::*;
use serde_json::json;

/// The repository of the delivery fixtures, as GitHub's paths and the fakes' scopes write it.
const REPO: &str = "repos/Codertocat/Hello-World";
const TARGET: &str = "codertocat/hello-world";
/// What the fixtures' jobs ask for.
const LABELS: [&str; 2] = ["self-hosted", "aci"];

fn warm_world(n: usize) -> World {
    World::new().setting("WARM_RUNNERS", &format!("{TARGET}={n}"))
}

/// One sweep, the warm creates it asks for, and their runners online.
async fn warm_up(ctx: &Ctx, n: usize) -> Vec<String> {
    ctx.sweep().await;
    assert!(
        ctx.sweep_summary().contains(&format!("warm_floor={n} warm_requested={n} ")),
        "{}",
        ctx.sweep_summary()
    );
    ctx.expect_queued(n);
    assert_eq!(ctx.drain().await, n);
    ctx.expect_queued(0);
    ctx.start_runners();
    let names: Vec<String> = ctx.arm().groups.keys().cloned().collect();
    assert_eq!(names.len(), n);
    names
}

/// The `warm=` field of the `result=created` line of a runner's create.
async fn created_line_warm(ctx: &Ctx, runner: &str) -> Option<String> {
    let start = format!("provision op=create runner={runner} attempt=1 result=created");
    ctx.expect_log(&start).await;
    let logs = ctx.logs();
    let line = logs.lines().find(|l| l.starts_with(&start))?;
    line.split(' ').find_map(|f| f.strip_prefix("warm=")).map(str::to_string)
}

/// Names of the groups whose PUT ARM took, in order.
fn puts(ctx: &Ctx) -> Vec<String> {
    ctx.arm().puts.iter().map(|(n, _)| n.clone()).collect()
}

/// N warm runners, k jobs queued at once: every job starts, each causes exactly one create, the
/// hits start before anything is written for them, and the floor is whole again at the end.
async fn jobs_on_a_warm_floor(n: usize, k: usize) {
    run_test(warm_world(n), async |ctx| {
        let warm = warm_up(ctx, n).await;
        for name in &warm {
            assert!(name.starts_with("aci-runner-w-") && name.len() == "aci-runner-w-".len() + 8, "{name}");
            let arm = ctx.arm();
            let body = &arm.groups[name].body;
            assert_eq!(body["tags"]["warm"], "true");
            assert_eq!(body["tags"]["origin"], "warm");
            assert_eq!(body["tags"]["github-repository"], "Codertocat/Hello-World".to_ascii_lowercase());
            assert!(body.get("identity").is_none(), "a warm group carries no identity");
            assert_eq!(
                body["properties"]["containers"][0]["properties"]["environmentVariables"],
                json!([{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": format!("{name}-{JIT_SUFFIX}")}])
            );
        }
        {
            let gh = ctx.github();
            assert!(warm.iter().all(|w| gh.runner_named(w).is_some_and(|r| r.status == "online" && !r.busy)));
        }

        let jobs: Vec<u64> = (1..=k as u64).map(|i| 7000 + i).collect();
        for &id in &jobs {
            ctx.github().queue_job(REPO, id, &LABELS);
            ctx.deliver(queued(id)).await.expect_status(202);
        }
        assert_eq!(ctx.drain().await, k);
        ctx.start_runners();

        let hits: Vec<u64> = {
            let gh = ctx.github();
            for &id in &jobs {
                assert!(gh.runner_of_job(id).is_some(), "job {id} started");
            }
            assert!(gh.queue.is_empty());
            jobs.iter().copied().filter(|id| warm.contains(&gh.runner_of_job(*id).unwrap())).collect()
        };
        assert_eq!(hits.len(), n.min(k), "the first jobs find the warm runners");
        {
            let gh = ctx.github();
            let arm = ctx.arm();
            for &id in &hits {
                let started = gh.started_seq(id).unwrap();
                let name = format!("aci-runner-{id}");
                assert!(started < gh.c.seq_of(&format!("jit {name}")).unwrap(), "job {id} started before its runner was registered");
                assert!(started < arm.c.seq_of(&format!("put {name}")).unwrap(), "job {id} started before its group was made");
            }
        }
        let job_puts: Vec<String> = puts(ctx).into_iter().filter(|p| !warm.contains(p)).collect();
        let want: Vec<String> = jobs.iter().map(|id| format!("aci-runner-{id}")).collect();
        assert_eq!(job_puts, want, "every queued job caused exactly one create");
        for &id in &jobs {
            let want = if hits.contains(&id) { "hit" } else { "miss" };
            assert_eq!(created_line_warm(ctx, &format!("aci-runner-{id}")).await.as_deref(), Some(want), "job {id}");
        }

        // Every job ends: its ephemeral runner leaves GitHub, its container exits, GitHub says so.
        for &id in &jobs {
            let runner = ctx.github().finish_job(id).unwrap();
            ctx.arm().container_exits(&runner, "Succeeded");
            ctx.deliver(completed(id, Some(&runner))).await.expect_status(202);
        }
        assert_eq!(ctx.drain().await, k);
        ctx.arm().settle();

        // N idle again, nothing left behind.
        let idle: Vec<String> = ctx.arm().groups.keys().cloned().collect();
        assert_eq!(idle.len(), n, "{idle:?}");
        for name in &idle {
            assert_eq!(ctx.arm().state(name), ("Succeeded", Some("Running")), "{name}'s group is running");
        }
        {
            let gh = ctx.github();
            assert_eq!(gh.runners.len(), n);
            for name in &idle {
                let r = gh.runner_named(name).unwrap_or_else(|| panic!("{name} is registered"));
                assert!(r.status == "online" && !r.busy, "{name} is idle");
            }
        }
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        assert!(
            summary.contains(&format!(
                "deleted_idle=0 deregistered_ghosts=0 kept=0 requeued=0 reconciled=0 redelivered=0 warm_floor={n} warm_requested=0 warm_rotated=0 warm_removed=0"
            )),
            "the floor holds without a second mechanism: {summary}"
        );
        ctx.expect_queued(0);
    })
    .await;
}

#[tokio::test]
async fn one_job_on_a_floor_of_two() {
    jobs_on_a_warm_floor(2, 1).await;
}

#[tokio::test]
async fn as_many_jobs_as_warm_runners() {
    jobs_on_a_warm_floor(2, 2).await;
}

#[tokio::test]
async fn three_times_as_many_jobs_as_warm_runners() {
    jobs_on_a_warm_floor(2, 6).await;
}

#[tokio::test]
async fn surplus_idle_runners_go_after_the_idle_timeout_and_the_floor_is_kept() {
    let world = warm_world(2)
        .arm(|arm| {
            for (name, minutes) in [
                ("aci-runner-w-00000002", 30),
                ("aci-runner-w-00000003", 20),
                ("aci-runner-w-00000004", 40),
                ("aci-runner-5", 50),
            ] {
                arm.seed(name, true, "Succeeded", Some("Running"), &minutes_ago(minutes)).tag(
                    name,
                    "github-repository",
                    "Codertocat/Hello-World",
                );
                if name.contains("-w-") {
                    arm.tag(name, "warm", "true");
                }
            }
            arm
        })
        .github(|gh| {
            for name in [
                "aci-runner-w-00000002",
                "aci-runner-w-00000003",
                "aci-runner-w-00000004",
                "aci-runner-5",
            ] {
                gh.runner(REPO, name, "online", false);
            }
            gh
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        assert!(
            summary.starts_with("sweep groups=4 runners=4 deleted_terminated=0 deleted_lifetime=0 deleted_idle=2 deregistered_ghosts=0 kept=0 requeued=0 reconciled=0 redelivered=0 warm_floor=2 warm_requested=0 warm_rotated=0 warm_removed=1 warm_idle_s="),
            "the two youngest are kept, the job's idle runner and the oldest warm one go: {summary}"
        );
        // The host said nothing of the previous sweep: the kept runners' whole lives, 20 and 30
        // minutes (and the seconds the test took).
        let idle_s: u64 = summary.split("warm_idle_s=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!((3000..3010).contains(&idle_s), "{summary}");
        ctx.arm().settle().expect_groups(["aci-runner-w-00000002", "aci-runner-w-00000003"]);
        ctx.github().expect_runners(["aci-runner-w-00000002", "aci-runner-w-00000003"]);
    })
    .await;
}

#[tokio::test]
async fn a_warm_runner_at_the_lifetime_cap_is_rotated_deregistered_first() {
    let world = warm_world(1)
        .arm(|arm| {
            arm.seed("aci-runner-w-00000001", true, "Succeeded", Some("Running"), &minutes_ago(400))
                .tag("aci-runner-w-00000001", "github-repository", "Codertocat/Hello-World")
                .tag("aci-runner-w-00000001", "warm", "true")
        })
        .github(|gh| gh.runner(REPO, "aci-runner-w-00000001", "online", false));
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        assert!(summary.contains("deleted_lifetime=0"), "{summary}");
        assert!(
            summary.contains("warm_floor=1 warm_requested=1 warm_rotated=1 warm_removed=0"),
            "{summary}"
        );
        {
            let gh = ctx.github();
            let arm = ctx.arm();
            let dereg = gh.c.seq_of("delete-runner aci-runner-w-00000001").unwrap();
            assert!(dereg < arm.c.seq_of("delete aci-runner-w-00000001").unwrap(), "deregistered first");
        }
        // Its replacement.
        ctx.expect_queued(1);
        ctx.drain().await;
        ctx.start_runners();
        let groups: Vec<String> = ctx.arm().groups.keys().cloned().collect();
        assert_eq!(groups.len(), 1);
        assert_ne!(groups[0], "aci-runner-w-00000001");
        assert!(ctx.github().runner_named(&groups[0]).is_some_and(|r| r.status == "online"));
    })
    .await;
}

#[tokio::test]
async fn a_warm_runner_that_just_took_a_job_is_not_rotated() {
    let world = warm_world(1)
        .arm(|arm| {
            arm.seed("aci-runner-w-00000001", true, "Succeeded", Some("Running"), &minutes_ago(400))
                .tag("aci-runner-w-00000001", "github-repository", "Codertocat/Hello-World")
                .tag("aci-runner-w-00000001", "warm", "true")
        })
        .github(|gh| {
            gh.runner(REPO, "aci-runner-w-00000001", "online", false);
            // It takes a job between the sweeper's list and its deregistration.
            gh.c.faults.push(Fault {
                only: None,
                op: "delete-runner",
                times: 1,
                resp: Resp::json(422, json!({"message": "Bad request - Runner is still running a job"})),
            });
            gh
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        assert!(summary.contains("kept=1"), "{summary}");
        assert!(summary.contains("warm_rotated=0"), "{summary}");
        assert!(!ctx.arm().groups["aci-runner-w-00000001"].provisioning_state.contains("Deleting"));
        assert_eq!(ctx.arm().c.count("delete"), 0, "a 422 keeps it");
        ctx.expect_queued(1);
        ctx.drain().await;
    })
    .await;
}

/// Tomorrow's weekday, as WARM_HOURS writes days.
fn another_day() -> &'static str {
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][tomorrow.weekday().number_days_from_monday() as usize]
}

#[tokio::test]
async fn outside_warm_hours_the_floor_is_zero() {
    let world = warm_world(2)
        .setting("WARM_HOURS", &format!("{} 00:00-24:00", another_day()))
        .arm(|arm| {
            arm.seed("aci-runner-w-00000002", true, "Succeeded", Some("Running"), &minutes_ago(30))
                .tag("aci-runner-w-00000002", "github-repository", "Codertocat/Hello-World")
                .tag("aci-runner-w-00000002", "warm", "true")
        })
        .github(|gh| gh.runner(REPO, "aci-runner-w-00000002", "online", false));
    run_test(world, async |ctx| {
        ctx.sweep().await;
        assert!(
            ctx.sweep_summary()
                .contains("deleted_idle=1 deregistered_ghosts=0 kept=0 requeued=0 reconciled=0 redelivered=0 warm_floor=0 warm_requested=0 warm_rotated=0 warm_removed=1 warm_idle_s=0"),
            "{}",
            ctx.sweep_summary()
        );
        ctx.arm().settle().expect_groups([]);
    })
    .await;
}

/// Two groups of Codertocat/Hello-World running jobs, started three minutes ago.
fn two_busy_runners(world: World) -> World {
    world
        .arm(|arm| {
            for name in ["aci-runner-1", "aci-runner-2"] {
                arm.seed(name, true, "Succeeded", Some("Running"), &minutes_ago(3)).tag(
                    name,
                    "github-repository",
                    "Codertocat/Hello-World",
                );
            }
            arm
        })
        .github(|gh| {
            gh.runner(REPO, "aci-runner-1", "online", true)
                .runner(REPO, "aci-runner-2", "online", true)
        })
}

#[tokio::test]
async fn warm_runners_count_in_max_runners_and_wait_for_no_one() {
    let world = two_busy_runners(warm_world(2).setting("MAX_RUNNERS", "3"));
    run_test(world, async |ctx| {
        ctx.sweep().await;
        assert!(ctx.sweep_summary().contains("warm_requested=2"), "{}", ctx.sweep_summary());
        ctx.expect_queued(2);
        assert_eq!(ctx.drain().await, 2, "one try each: a warm create at the cap does not wait");
        assert_eq!(ctx.arm().groups.len(), 3, "two busy groups and one warm: MAX_RUNNERS is 3");
        ctx.expect_log("result=\"skipped: MAX_RUNNERS reached (3 of 3 live); the next sweep asks again\"")
            .await;
        ctx.expect_poisoned(0);
    })
    .await;
}

#[tokio::test]
async fn a_queued_job_caught_at_the_cap_still_waits_while_warm_runners_are_asked_for() {
    // Without a warm runner free, a job's create waits at the cap as ever.
    let world = two_busy_runners(warm_world(1).setting("MAX_RUNNERS", "2")).github(|gh| gh.job(300, "queued"));
    run_test(world, async |ctx| {
        ctx.deliver(queued(300)).await.expect_status(202);
        assert_eq!(ctx.host().invoke_batch().await, [500]);
        ctx.expect_log("provision.waiting op=create runner=aci-runner-300 attempt=1 why=\"MAX_RUNNERS reached (2 of 2 live)\"")
            .await;
        ctx.expect_queued(1);
        assert_eq!(
            ctx.github().c.calls,
            ["get-job"],
            "asked once whether it found a warm runner; no runner registered over the cap"
        );
    })
    .await;
}

#[tokio::test]
async fn org_scope_keeps_the_organizations_floor_and_a_repositorys_job_lands_on_it() {
    let world = World::new().setting("RUNNER_SCOPE", "org").setting("WARM_RUNNERS", "Codertocat=1");
    run_test(world, async |ctx| {
        let warm = warm_up(ctx, 1).await;
        {
            let arm = ctx.arm();
            let tags = &arm.groups[&warm[0]].body["tags"];
            assert_eq!(tags["github-owner"], "codertocat");
            assert!(
                tags.get("github-repository").is_none(),
                "an organization's warm runner is no repository's"
            );
            let gh = ctx.github();
            assert_eq!(gh.runner_named(&warm[0]).unwrap().scope, "orgs/codertocat");
        }
        assert_eq!(ctx.github().queue_job(REPO, 51, &LABELS).as_deref(), Some(warm[0].as_str()));
        ctx.deliver(queued(51)).await.expect_status(202);
        ctx.drain().await;
        assert_eq!(created_line_warm(ctx, "aci-runner-51").await.as_deref(), Some("hit"));
        ctx.github().finish_job(51);
        ctx.arm().settle().container_exits(&warm[0], "Succeeded");
        ctx.deliver(completed(51, Some(&warm[0]))).await.expect_status(202);
        ctx.drain().await;
        ctx.start_runners();
        ctx.arm().expect_groups(["aci-runner-51"]);
        ctx.github().expect_runners(["aci-runner-51"]);
    })
    .await;
}

#[tokio::test]
async fn a_dry_run_says_which_warm_runners_it_would_ask_for_and_asks_for_none() {
    run_test(warm_world(2).setting("DRY_RUN", "true"), async |ctx| {
        ctx.sweep().await;
        assert!(
            ctx.sweep_summary().contains("warm_floor=2 warm_requested=2 "),
            "{}",
            ctx.sweep_summary()
        );
        ctx.expect_log("sweep.would-warm runner=aci-runner-w-").await;
        ctx.expect_queued(0);
        assert!(ctx.arm().c.writes.is_empty() && ctx.github().c.writes.is_empty());
    })
    .await;
}

#[tokio::test]
async fn warm_runners_count_in_a_repositorys_share() {
    let world = two_busy_runners(warm_world(2).setting("MAX_RUNNERS_PER_REPOSITORY", "3"));
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_queued(2);
        assert_eq!(ctx.drain().await, 2);
        assert_eq!(ctx.arm().groups.len(), 3, "the repository's share is 3");
        ctx.expect_log("result=\"skipped: MAX_RUNNERS_PER_REPOSITORY reached for codertocat/hello-world (3 live and 0 being created here, of 3); the next sweep asks again\"")
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_warm_request_left_on_the_queue_after_warm_runners_are_turned_off_is_dropped() {
    let m = json!({"op": "create", "runner": "aci-runner-w-abcdef01", "repository": TARGET, "origin": "warm",
                   "run": 0, "attempt": 0, "labels": ["self-hosted", "linux", "x64", "aci"]})
    .to_string();
    run_test(World::new(), async |ctx| {
        ctx.host().enqueue(QUEUE, &m);
        assert_eq!(ctx.drain().await, 1);
        ctx.expect_log("provision op=create runner=aci-runner-w-abcdef01 attempt=1 result=\"dropped: no warm floor for its target now\"")
            .await;
        assert!(ctx.arm().c.calls.is_empty() && ctx.github().c.calls.is_empty());
    })
    .await;
}

#[tokio::test]
async fn idle_seconds_count_since_the_previous_sweep_when_the_host_says_when_it_ran() {
    let world = warm_world(2)
        .arm(|arm| {
            for (name, minutes) in [("aci-runner-w-00000002", 30), ("aci-runner-w-00000003", 2)] {
                arm.seed(name, true, "Succeeded", Some("Running"), &minutes_ago(minutes))
                    .tag(name, "github-repository", "Codertocat/Hello-World")
                    .tag(name, "warm", "true");
            }
            arm
        })
        .github(|gh| {
            gh.runner(REPO, "aci-runner-w-00000002", "online", false)
                .runner(REPO, "aci-runner-w-00000003", "online", false)
        });
    run_test(world, async |ctx| {
        let status = json!({"Last": minutes_ago(5), "Next": minutes_ago(0), "LastUpdated": minutes_ago(5)});
        let (code, body) = ctx.host().timer("sweep", status, false).await;
        assert_eq!(code, 200, "{body}");
        ctx.expect_log("sweep groups=").await;
        let summary = ctx.sweep_summary();
        // Five minutes of the older runner, two of the one started since the previous sweep.
        let idle_s: u64 = summary
            .split("warm_idle_s=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((420..430).contains(&idle_s), "{summary}");
    })
    .await;
}

#[tokio::test]
async fn a_warm_create_that_meets_acis_quota_removes_its_registration_and_does_not_wait() {
    let world = warm_world(1).arm(|arm| {
        arm.c.faults.push(Fault {
            only: None,
            op: "put",
            times: 1,
            resp: Resp::json(409, json!({"error": {"code": "ContainerGroupQuotaReached", "message": "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded in region 'westeurope'."}})),
        });
        arm
    });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_queued(1);
        assert_eq!(ctx.drain().await, 1, "one try: no retry on the queue");
        ctx.expect_queued(0);
        ctx.expect_poisoned(0);
        ctx.github().expect_runners([]);
        ctx.arm().expect_groups([]);
        ctx.expect_log("result=\"skipped: Azure capacity or quota: arm.put-container-group")
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_target_whose_runners_cannot_be_listed_gets_no_warm_runner() {
    let world = warm_world(2).github(|gh| {
        gh.c.faults.push(Fault {
            only: None,
            op: "list-runners",
            times: 3,
            resp: Resp::json(502, json!({"message": "Server Error"})),
        });
        gh
    });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        assert!(
            summary.contains("warm_floor=2 warm_requested=0 "),
            "whether its runners are busy is unknown: {summary}"
        );
        assert!(summary.contains("failed=1"), "{summary}");
        ctx.expect_queued(0);
    })
    .await;
}

#[tokio::test]
async fn in_app_mode_a_warm_runner_is_made_with_the_installations_token_and_a_hit_asks_for_actions_read() {
    let world = World::new()
        .github_app(&["Codertocat"])
        .setting("RUNNER_SCOPE", "org")
        .setting("WARM_RUNNERS", "codertocat=1");
    run_test(world, async |ctx| {
        let warm = warm_up(ctx, 1).await;
        assert_eq!(ctx.github().runner_named(&warm[0]).unwrap().scope, "orgs/codertocat");
        assert_eq!(ctx.vault().reads("github-pat"), 0, "no PAT in App mode");
        ctx.github().queue_job(REPO, 61, &LABELS);
        ctx.deliver(queued(61)).await.expect_status(202);
        ctx.drain().await;
        assert_eq!(created_line_warm(ctx, "aci-runner-61").await.as_deref(), Some("hit"));
        let gh = ctx.github();
        let perms: Vec<String> = gh.app.tokens_made.iter().map(|(_, p)| p.to_string()).collect();
        assert!(
            perms.iter().any(|p| p.contains("\"actions\":\"read\"")),
            "the job lookup asks for actions: read: {perms:?}"
        );
        assert_eq!(gh.app.jwts_refused.len(), 0);
    })
    .await;
}

/// An `in_progress` delivery for job `id`, run by `runner`, created `wait` seconds before it
/// started.
fn started(id: u64, runner: &str, wait: i64) -> Delivery {
    let mut v: serde_json::Value = serde_json::from_slice(include_bytes!("data/workflow_job__in_progress.payload.json")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let j = &mut v["workflow_job"];
    j["id"] = id.into();
    j["labels"] = json!(LABELS);
    j["runner_name"] = runner.into();
    j["created_at"] = aci_runners::clock::rfc3339(now - time::Duration::seconds(wait)).into();
    j["started_at"] = aci_runners::clock::rfc3339(now).into();
    Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap())
}

#[tokio::test]
async fn the_timeline_says_hit_or_miss_and_handler_report_shows_them_apart_with_the_floors_idle_cost() {
    run_test(warm_world(1), async |ctx| {
        let warm = warm_up(ctx, 1).await;
        for id in [81, 82] {
            ctx.github().queue_job(REPO, id, &LABELS);
            ctx.deliver(queued(id)).await.expect_status(202);
        }
        ctx.drain().await;
        ctx.start_runners();
        let (hit_runner, miss_runner) = {
            let gh = ctx.github();
            (gh.runner_of_job(81).unwrap(), gh.runner_of_job(82).unwrap())
        };
        assert_eq!(hit_runner, warm[0]);
        ctx.deliver(started(81, &hit_runner, 4)).await.expect_status(200);
        ctx.deliver(started(82, &miss_runner, 150)).await.expect_status(200);
        ctx.expect_log("job.started repository=Codertocat/Hello-World job=82").await;
        let logs = ctx.logs();
        let started_line = |id: u64| {
            logs.lines()
                .find(|l| l.starts_with(&format!("job.started repository=Codertocat/Hello-World job={id} ")))
                .unwrap_or_else(|| panic!("no job.started line for {id}:\n{logs}"))
                .to_string()
        };
        assert!(started_line(81).contains(" warm=hit"), "{}", started_line(81));
        // Job 82 ran on the runner made for 81 (it started first): from the runner's name alone
        // the line cannot tell that runner was not waiting when 82 was queued. Provision's line,
        // asked at 82's create, says miss, and the report takes that one.
        assert_eq!(created_line_warm(ctx, "aci-runner-82").await.as_deref(), Some("miss"));
        ctx.sweep().await;

        let path = std::env::temp_dir().join(format!("warm-report-{}.log", std::process::id()));
        std::fs::write(&path, ctx.logs()).unwrap();
        let out = ctx.cli(&["report", path.to_str().unwrap()], &[]).await;
        let _ = std::fs::remove_file(&path);
        assert!(out.ok, "{}", out.stderr);
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("warm runners: "))
            .unwrap_or_else(|| panic!("no warm line:\n{}", out.stdout));
        assert!(line.starts_with("warm runners: 1 hits (time to a runner p50 "), "{line}");
        assert!(line.contains("), 1 misses (p50 "), "{line}");
        assert!(line.contains("runner-hours, $"), "the floor's idle cost: {line}");
    })
    .await;
}
