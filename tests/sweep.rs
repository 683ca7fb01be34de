//! The sweeper through the fake host's timer: nothing left behind, nothing busy killed.

mod common;

use common::fakes::Fault;
use common::net::Resp;
use common::*;
use serde_json::json;

const REPO: &str = "repos/octo-org/octo-repo";

/// The groups whose DELETE ARM accepted, in name order.
fn deletes_accepted(ctx: &Ctx) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .arm()
        .c
        .writes
        .iter()
        .filter_map(|(_, w)| w.strip_prefix("delete ").map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Groups in every state, an unmanaged group, ghosts and a stranger's runner.
fn seeded(world: World) -> World {
    world
        .arm(|arm| {
            arm.seed("aci-runner-1", true, "Succeeded", Some("Succeeded"), &common::minutes_ago(5)); // exited
            arm.seed("aci-runner-2", true, "Failed", None, &common::minutes_ago(5)); // ARM gave up
            arm.seed("aci-runner-3", true, "Succeeded", Some("Running"), &common::minutes_ago(400)); // past lifetime, busy
            arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &common::minutes_ago(30)); // idle
            arm.seed("aci-runner-5", true, "Succeeded", Some("Running"), &common::minutes_ago(30)); // busy
            arm.seed("aci-runner-6", true, "Succeeded", Some("Running"), &common::minutes_ago(5)); // booting
            arm.seed("aci-runner-7", true, "Succeeded", Some("Running"), &common::minutes_ago(30)); // idle, no registration
            arm.seed("aci-runner-8", false, "Succeeded", Some("Succeeded"), &common::minutes_ago(9000)); // not ours to touch
            arm
        })
        .github(|gh| {
            gh.runner(REPO, "aci-runner-1", "offline", false);
            gh.runner(REPO, "aci-runner-3", "online", true);
            gh.runner(REPO, "aci-runner-4", "online", false);
            gh.runner(REPO, "aci-runner-5", "online", true);
            gh.runner(REPO, "aci-runner-6", "offline", false);
            gh.runner(REPO, "aci-runner-777", "offline", false); // ghost, job done
            gh.runner(REPO, "aci-runner-778", "offline", false); // job still queued: mid-provisioning
            gh.runner(REPO, "build-box", "offline", false); // a stranger's runner
            gh.job(777, "completed").job(778, "queued")
        })
}

#[tokio::test]
async fn exactly_the_right_deletions_in_the_right_order() {
    run_test(seeded(World::new()), async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        assert_eq!(
            deletes_accepted(ctx),
            ["aci-runner-1", "aci-runner-2", "aci-runner-3", "aci-runner-4", "aci-runner-7"]
        );
        {
            let mut arm = ctx.arm();
            // What ARM has not finished deleting by the end of the sweep goes once it has.
            arm.settle().expect_groups(["aci-runner-5", "aci-runner-6", "aci-runner-8"]);
            let gh = ctx.github();
            // GitHub refuses to remove a busy runner (422); its group past the lifetime cap is
            // deleted anyway and the registration goes offline with it.
            gh.expect_runners(["aci-runner-3", "aci-runner-5", "aci-runner-6", "aci-runner-778", "build-box"]);
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
            ctx.sweep_summary(),
            "sweep groups=7 runners=7 deleted_terminated=2 deleted_lifetime=1 deleted_idle=2 deregistered_ghosts=1 kept=0 requeued=0 reconciled=0 redelivered=0 failed=0 dry_run=false past_due=false"
        );
    })
    .await;
}

#[tokio::test]
async fn dry_run_reports_and_changes_nothing() {
    run_test(seeded(World::new().setting("DRY_RUN", "true")), async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        assert_eq!(ctx.arm().groups.len(), 8);
        assert_eq!(ctx.github().runners.len(), 8);
        assert!(ctx.arm().c.writes.is_empty() && ctx.github().c.writes.is_empty());
        assert!(
            ctx.sweep_summary()
                .contains("deleted_terminated=2 deleted_lifetime=1 deleted_idle=2 deregistered_ghosts=1"),
            "{}",
            ctx.sweep_summary()
        );
        assert!(ctx.sweep_summary().contains("dry_run=true"));
        ctx.expect_log("sweep.would-delete plan=\"reason=idle deregister=aci-runner-4 (octo-org/octo-repo) delete=aci-runner-4\"")
            .await;
    })
    .await;
}

#[tokio::test]
async fn the_timer_envelope_with_a_status_object_and_past_due() {
    run_test(World::new(), async |ctx| {
        let status =
            json!({"Last": "2026-11-28T10:15:00+00:00", "Next": "2026-11-28T10:20:00+00:00", "LastUpdated": "2026-11-28T10:16:00+00:00"});
        let (code, body) = ctx.host().timer("sweep", status, true).await;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["Outputs"].is_object() && v["Logs"].is_array());
        ctx.expect_log("past_due=true").await;
        assert!(
            ctx.sweep_summary().starts_with("sweep groups=0 runners=0"),
            "{}",
            ctx.sweep_summary()
        );
    })
    .await;
}

#[tokio::test]
async fn more_than_a_hundred_groups_and_runners_are_paged() {
    let world = World::new()
        .arm(|arm| {
            for i in 0..150 {
                arm.seed(&format!("aci-runner-{}", 10_000 + i), true, "Failed", None, &common::minutes_ago(3));
            }
            arm
        })
        .github(|gh| {
            for i in 0..130 {
                gh.runner(REPO, &format!("aci-runner-{}", 20_000 + i), "offline", false);
            }
            gh
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        assert_eq!(ctx.sweep_summary(), "sweep groups=150 runners=130 deleted_terminated=150 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=130 kept=0 requeued=0 reconciled=0 redelivered=0 failed=0 dry_run=false past_due=false");
        assert_eq!(deletes_accepted(ctx).len(), 150);
        {
            let mut arm = ctx.arm();
            arm.settle().expect_groups([]);
            assert_eq!(arm.c.count("list"), 2, "two pages via nextLink");
            assert_eq!(arm.c.count("get"), 0, "failed groups need no state read");
            let gh = ctx.github();
            gh.expect_runners([]);
            assert_eq!(gh.c.count("list-runners"), 2, "two pages via Link");
        }
    })
    .await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_failures_wait_for_the_next_run() {
    let world = seeded(World::new())
        .arm(|arm| {
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
            arm
        })
        .github(|gh| {
            gh.c.faults.push(Fault {
                only: None,
                op: "list-runners",
                times: 1,
                resp: Resp::json(502, json!({"message": "Server Error"})),
            });
            gh
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        let first = ctx.sweep_summary();
        assert!(first.contains("failed=1"), "one delete failed for good: {first}");
        assert_eq!(
            ctx.arm().settle().groups.len(),
            4,
            "one of the five deletions is left for the next run"
        );
        ctx.sweep().await;
        ctx.expect_log("sweep groups=3 runners=4 deleted_terminated=0 deleted_lifetime=0 deleted_idle=1 ")
            .await;
        // aci-runner-7 went on the second run.
        ctx.arm().settle().expect_groups(["aci-runner-5", "aci-runner-6", "aci-runner-8"]);
    })
    .await;
}

#[tokio::test]
async fn a_runner_that_just_took_a_job_keeps_its_idle_group() {
    let world = World::new()
        .arm(|arm| {
            arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &common::minutes_ago(30))
                .seed("aci-runner-3", true, "Succeeded", Some("Running"), &common::minutes_ago(400))
        })
        .github(|gh| {
            gh.runner(REPO, "aci-runner-4", "online", false)
                .runner(REPO, "aci-runner-3", "online", false);
            // Between the list and the delete both runners take a job: GitHub answers 422.
            gh.c.faults.push(Fault {
                only: None,
                op: "delete-runner",
                times: 2,
                resp: Resp::json(422, json!({"message": "Bad request - Runner is still running a job"})),
            });
            gh
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        assert_eq!(deletes_accepted(ctx), ["aci-runner-3"]);
        {
            let mut arm = ctx.arm();
            arm.settle();
            assert!(arm.groups.contains_key("aci-runner-4"), "idle group kept when deregistering fails");
            assert!(
                !arm.groups.contains_key("aci-runner-3"),
                "a group past its lifetime is deleted anyway"
            );
        }
        assert!(
            ctx.sweep_summary()
                .contains("deleted_lifetime=1 deleted_idle=0 deregistered_ghosts=0 kept=1 requeued=0 reconciled=0 redelivered=0 failed=0"),
            "{}",
            ctx.sweep_summary()
        );
    })
    .await;
}

#[tokio::test]
async fn org_scope_lists_the_organization_and_leaves_ghosts() {
    let world = World::new()
        .setting("RUNNER_SCOPE", "org")
        .setting("ALLOWED_OWNERS", "acme")
        .arm(|arm| {
            arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &common::minutes_ago(30))
                .groups
                .get_mut("aci-runner-4")
                .unwrap()
                .tags
                .insert("github-owner".into(), "octo-org".into());
            arm
        })
        .github(|gh| {
            gh.runner("orgs/octo-org", "aci-runner-4", "online", false)
                .runner("orgs/octo-org", "aci-runner-99", "offline", false)
                .runner("orgs/acme", "aci-runner-98", "offline", false)
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        ctx.arm().settle().expect_groups([]);
        {
            let gh = ctx.github();
            // Org-scope ghosts are left to GitHub.
            gh.expect_runners(["aci-runner-98", "aci-runner-99"]);
            assert_eq!(gh.c.count("list-runners"), 2, "octo-org from the tag, acme from ALLOWED_OWNERS");
        }
    })
    .await;
}

#[tokio::test]
async fn handler_sweep_cli_prints_the_plan_and_deletes_only_with_yes() {
    run_test(seeded(World::new()).without_host(), async |ctx| {
        let refused = ctx.cli(&["sweep"], &[]).await;
        assert!(!refused.ok);
        assert!(refused.stderr.contains("pass --dry-run to see the plan, or --yes"));

        let plan = ctx.cli(&["sweep", "--dry-run"], &[]).await;
        let out = &plan.stdout;
        assert!(plan.ok, "{out}\n{}", plan.stderr);
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
                "deleted_terminated=2 deleted_lifetime=1 deleted_idle=2 deregistered_ghosts=1 kept=0 requeued=0 reconciled=0 redelivered=0 failed=0 dry_run=true"
            ),
            "{out}"
        );
        assert_eq!(ctx.arm().groups.len(), 8, "a dry run deletes nothing");

        let done = ctx.cli(&["sweep", "--yes"], &[]).await;
        assert!(done.ok, "{}", done.stderr);
        assert_eq!(deletes_accepted(ctx).len(), 5);
        assert_eq!(ctx.arm().settle().groups.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_job_whose_container_died_before_it_started_gets_another_runner() {
    run_test(World::new(), async |ctx| {
        // A webhook runner made for job 4242: its container exited (an image that would not pull)
        // while the job is still queued; another one whose job has since run elsewhere.
        ctx.deliver(queued(4242)).await.expect_status(202);
        ctx.deliver(queued(4243)).await.expect_status(202);
        ctx.drain().await;
        {
            let mut arm = ctx.arm();
            arm.settle();
            for n in ["aci-runner-4242", "aci-runner-4243"] {
                arm.container_exits(n, "Failed");
            }
            ctx.github().job(4242, "queued").job(4243, "completed");
        }
        ctx.sweep().await;
        ctx.expect_log("sweep groups=").await;
        assert!(
            ctx.sweep_summary().contains(
                "deleted_terminated=2 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=0 kept=0 requeued=1 reconciled=0 redelivered=0 failed=0"
            ),
            "{}",
            ctx.sweep_summary()
        );
        // The sweep's queue output. ARM is still deleting the old group when it is read.
        ctx.expect_queued(1);
        ctx.drain().await;
        {
            let mut arm = ctx.arm();
            arm.settle();
            // A fresh group for the job still queued, made once the old one was gone.
            arm.expect_groups(["aci-runner-4242"]);
            assert_eq!(arm.state("aci-runner-4242"), ("Succeeded", Some("Running")));
            let puts: Vec<u64> = arm
                .c
                .writes
                .iter()
                .filter(|(_, w)| w == "put aci-runner-4242")
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(puts.len(), 2, "made, then made anew");
            let gone = arm.event_seq("gone aci-runner-4242").expect("the old group went");
            assert!(gone < puts[1], "the new group was PUT after the old one was gone");
        }
        assert!(
            !ctx.logs()
                .lines()
                .any(|l| l.contains("runner=aci-runner-4242 ") && l.contains("result=exists")),
            "a group ARM is deleting is no runner for the job:\n{}",
            ctx.logs()
        );
    })
    .await;
}

/// A job GitHub queued with `labels`, `minutes` ago, as the runs and jobs lists show it.
fn listed(id: u64, run: u64, labels: &[&str], minutes: i64, status: &str) -> common::fakes::ListedJob {
    common::fakes::ListedJob {
        id,
        run_id: run,
        scope: "repos/octo-org/octo-repo".into(),
        status: status.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        created_at: common::minutes_ago(minutes),
    }
}

#[tokio::test]
async fn a_delivery_github_never_made_is_reconciled_once() {
    let world = World::new().setting("ALLOWED_REPOSITORIES", "octo-org/octo-repo").github(|gh| {
        // Job 7001's delivery never arrived; 7002 is too young to tell; 7003 is not ours;
        // 7004 runs already; run 8 is done.
        gh.listed_jobs.extend([
            listed(7001, 7, &["self-hosted", "aci"], 10, "queued"),
            listed(7002, 7, &["self-hosted", "aci"], 1, "queued"),
            listed(7003, 7, &["self-hosted", "gpu"], 10, "queued"),
            listed(7004, 7, &["self-hosted", "aci"], 10, "in_progress"),
            listed(6001, 8, &["self-hosted", "aci"], 60, "completed"),
        ]);
        gh.job(7001, "queued")
    });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        ctx.expect_log("sweep.reconciled runner=aci-runner-7001 repository=octo-org/octo-repo job=7001")
            .await;
        ctx.expect_log("requeued=0 reconciled=1 redelivered=0 failed=0").await;
        {
            let gh = ctx.github();
            let calls = (gh.c.count("list-runs"), gh.c.count("list-jobs"));
            assert_eq!(calls, (1, 1), "one call for the runs, one per run not completed");
        }
        ctx.expect_queued(1);
        ctx.drain().await;
        ctx.arm().expect_groups(["aci-runner-7001"]);
        ctx.github().expect_runners(["aci-runner-7001"]);

        // The next sweep: nothing changed at GitHub (answered 304), and the job has its group.
        ctx.sweep().await;
        ctx.expect_log("requeued=0 reconciled=0 redelivered=0 failed=0").await;
        assert_eq!(ctx.github().not_modified, 2, "runs and jobs both answered 304");
        ctx.expect_queued(0);
    })
    .await;
}

/// Issue 13's soak found a waiting request asked for again on every sweep: the job is queued and
/// has no group while its request waits for room, so reconciliation took it for a lost delivery.
#[tokio::test]
async fn a_job_whose_request_waits_for_room_is_not_asked_for_again() {
    let world = World::new()
        .setting("MAX_RUNNERS", "1")
        .setting("ALLOWED_REPOSITORIES", "Codertocat/Hello-World")
        .arm(|arm| arm.seed("aci-runner-1", true, "Succeeded", Some("Running"), &common::minutes_ago(1)))
        .github(|gh| {
            gh.listed_jobs.push(common::fakes::ListedJob {
                scope: "repos/Codertocat/Hello-World".into(),
                ..listed(7101, 71, &["self-hosted", "aci"], 10, "queued")
            });
            gh.job(7101, "queued")
        });
    run_test(world, async |ctx| {
        ctx.deliver(queued(7101)).await.expect_status(202);
        assert_eq!(ctx.invoke_batch().await, [500], "waits for room");
        ctx.expect_log("provision.waiting op=create runner=aci-runner-7101 attempt=1").await;

        // Sweeps while it waits: the job is queued, old enough, without a group, and not ours to
        // ask for again.
        for _ in 0..3 {
            ctx.sweep().await;
            ctx.expect_log("requeued=0 reconciled=0 redelivered=0 failed=0").await;
        }
        ctx.expect_queued(1);

        // GitHub redelivers the webhook: the copy is dropped on its first try.
        ctx.deliver(queued(7101)).await.expect_status(202);
        let mut statuses = ctx.invoke_batch().await;
        statuses.sort();
        assert_eq!(statuses, [200, 500], "the copy is dropped, the original waits on");
        ctx.expect_log(
            "provision op=create runner=aci-runner-7101 attempt=1 result=\"dropped: a request for this runner is already waiting here\"",
        )
        .await;
        ctx.expect_queued(1);

        // Room: the one request left makes the one runner.
        ctx.arm().fail("aci-runner-1");
        assert_eq!(ctx.invoke_batch().await, [200]);
        ctx.arm().expect_groups(["aci-runner-1", "aci-runner-7101"]);
        assert_eq!(ctx.github().c.count("jit"), 1);
        ctx.expect_queued(0);
    })
    .await;
}
