//! Attacks on DESIGN.md's trust boundaries, end to end: the staged handler under the fake
//! host, against the fakes. Each test tries what a neighbour could try (another repository or
//! organization with the shared webhook secret, a sibling deployment in the same resource
//! group, whoever can write a queue message or a tag) and checks what the fakes were left
//! with, the calls they saw and the line the handler wrote. The rules themselves are
//! table-tested in `src/rules/*`, `src/target.rs` and `src/http.rs`.

mod common;

use common::fakes::{Fault, GitHubState};
use common::host::HttpResult;
use common::net::Resp;
use common::oidc::{TestKey, AUDIENCE, KEY_A};
use common::*;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The repository the delivery fixtures come from.
const FIXTURE_REPO: &str = "Codertocat/Hello-World";
/// Another repository, whose runners the fixture's deliveries must not reach.
const VICTIM: &str = "octo-org/octo-repo";
const RUN: u64 = 2202229078;

/// The same delivery, as if from `full_name` (what anyone holding the webhook secret can sign).
fn from_repository(d: Delivery, full_name: &str) -> Delivery {
    let mut v: Value = serde_json::from_slice(&d.body).unwrap();
    let (owner, name) = full_name.split_once('/').unwrap_or((full_name, ""));
    v["repository"]["full_name"] = json!(full_name);
    v["repository"]["name"] = json!(name);
    v["repository"]["owner"]["login"] = json!(owner);
    Delivery::new(&d.event, serde_json::to_vec(&v).unwrap())
}

/// The handler's `provision.dropped` lines.
fn dropped(ctx: &Ctx) -> Vec<String> {
    ctx.host()
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("provision.dropped "))
        .collect()
}

/// ARM's rule for a container group name, written out here rather than taken from the
/// handler: 1 to 63 lowercase letters, digits and hyphens, no hyphen first, last or twice.
fn arm_accepts(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Fails the test if GitHub or ARM saw any call at all.
#[track_caller]
fn expect_no_call(ctx: &Ctx) {
    assert_eq!(ctx.github().c.calls, Vec::<String>::new(), "GitHub calls");
    assert_eq!(ctx.arm().c.calls, Vec::<String>::new(), "ARM calls");
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn token(repo: &str, run: u64, attempt: u32) -> String {
    TestKey::new("key-a", KEY_A).token(ISSUER, repo, run, attempt, now())
}

async fn post_runner(ctx: &Ctx, token: &str, body: &Value) -> HttpResult {
    let auth = format!("Bearer {token}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    ctx.host()
        .http("runners", "POST", &headers, &serde_json::to_vec(body).unwrap())
        .await
}

async fn delete_runner(ctx: &Ctx, token: &str, name: &str) -> HttpResult {
    let auth = format!("Bearer {token}");
    ctx.host()
        .http_with_params("runners", "DELETE", &[("Authorization", auth.as_str())], b"", &[("name", name)])
        .await
}

// ------------------------------------------------ a runner is (target, name): releases

#[tokio::test]
async fn a_signed_completed_delivery_from_another_repository_cannot_release_its_runner() {
    let world = World::new()
        .arm(|arm| {
            // Made for the victim's job 51, running it now.
            arm.seed("aci-runner-51", true, "Succeeded", Some("Running"), &common::minutes_ago(5))
                .tag("aci-runner-51", "github-repository", VICTIM)
        })
        .github(|gh| {
            gh.runner(&format!("repos/{VICTIM}"), "aci-runner-51", "online", true)
                // A registration of the victim's whose group is gone already.
                .runner(&format!("repos/{VICTIM}"), "aci-runner-53", "online", false)
        });
    run_test(world, async |ctx| {
        // Signed with the shared secret, from the fixture's repository: "my job ran on
        // aci-runner-51", "my job 51 was cancelled", "my job ran on aci-runner-53".
        for d in [
            completed(999, Some("aci-runner-51")),
            completed(51, None),
            completed(998, Some("aci-runner-53")),
        ] {
            ctx.deliver(d).await.expect_status(202);
        }
        assert_eq!(ctx.drain().await, 3, "each message once");
        {
            let arm = ctx.arm();
            arm.expect_groups(["aci-runner-51"]);
            assert_eq!(arm.c.calls, ["get", "get", "get"], "the group's tags are read, nothing written");
            let gh = ctx.github();
            gh.expect_runners(["aci-runner-51", "aci-runner-53"]);
            assert!(gh.runner_named("aci-runner-51").unwrap().busy, "still running the victim's job");
            // aci-runner-53 has no group: it is looked for in the sender's repository only,
            // where there is none.
            assert_eq!(gh.c.calls, ["list-runners"]);
            assert!(gh.c.writes.is_empty(), "{:?}", gh.c.writes);
        }
        let left_alone = "provision op=release runner=aci-runner-51 attempt=1 \
                          result=\"left alone: group was made for octo-org/octo-repo, not for this delivery's target\"";
        ctx.expect_log(left_alone).await;
        assert_eq!(ctx.logs().matches(left_alone).count(), 2, "{}", ctx.logs());
        ctx.expect_log("provision op=release runner=aci-runner-53 attempt=1 result=\"released deregistered=false deleted=false\"")
            .await;

        // The victim's own delivery, once its job is done, releases it.
        ctx.github().runners.values_mut().find(|r| r.name == "aci-runner-51").unwrap().busy = false;
        ctx.deliver(from_repository(completed(51, Some("aci-runner-51")), VICTIM))
            .await
            .expect_status(202);
        ctx.drain().await;
        ctx.arm().settle().expect_groups([]);
        ctx.github().expect_runners(["aci-runner-53"]);
        ctx.expect_log("provision op=release runner=aci-runner-51 attempt=1 result=\"released deregistered=true deleted=true\"")
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_signed_completed_delivery_from_another_organization_cannot_release_its_runner() {
    let world = World::new()
        .setting("RUNNER_SCOPE", "org")
        .arm(|arm| {
            arm.seed("aci-runner-52", true, "Succeeded", Some("Running"), &common::minutes_ago(5))
                .tag("aci-runner-52", "github-repository", VICTIM)
                .tag("aci-runner-52", "github-owner", "octo-org")
        })
        .github(|gh| {
            gh.runner("orgs/octo-org", "aci-runner-52", "online", true)
                // The sender's organization has a runner of that name too: another runner.
                .runner("orgs/Codertocat", "aci-runner-52", "online", false)
        });
    run_test(world, async |ctx| {
        ctx.deliver(completed(999, Some("aci-runner-52"))).await.expect_status(202);
        ctx.deliver(completed(52, None)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 2);
        {
            let arm = ctx.arm();
            arm.expect_groups(["aci-runner-52"]);
            assert_eq!(arm.c.calls, ["get", "get"]);
            let gh = ctx.github();
            assert_eq!(gh.c.calls, Vec::<String>::new(), "not even a lookup in either organization");
            assert_eq!(gh.runners.len(), 2);
        }
        ctx.expect_log("result=\"left alone: group was made for octo-org, not for this delivery's target\"")
            .await;

        // Another repository of the same organization shares its runners in org scope: it may.
        ctx.github().runners.values_mut().find(|r| r.scope == "orgs/octo-org").unwrap().busy = false;
        ctx.deliver(from_repository(completed(52, Some("aci-runner-52")), "octo-org/another-repo"))
            .await
            .expect_status(202);
        ctx.drain().await;
        ctx.arm().settle().expect_groups([]);
        {
            let gh = ctx.github();
            let left: Vec<&str> = gh.runners.values().map(|r| r.scope.as_str()).collect();
            assert_eq!(left, ["orgs/Codertocat"], "deregistered in the group's own organization only");
        }
    })
    .await;
}

// ------------------------------------------------ a runner is (target, name): the sweeper

/// The first runner list in each of `targets` answers 502, so it is retried and comes late.
/// The sweeper lists every target at once; each test below runs with the group's own target
/// answering first (`own_first`: the others come late), then last, so a pairing by name
/// alone picks a runner from another target whichever of the two it keeps.
fn answers_late(gh: &mut GitHubState, targets: &[&'static str]) {
    for t in targets {
        gh.c.faults.push(Fault {
            only: Some(t),
            op: "list-runners",
            times: 1,
            resp: Resp::json(502, json!({"message": "Server Error"})),
        });
    }
}

/// A busy runner's idle-aged group in the victim's repository, and idle runners of the same
/// name in two other allowed repositories, one listed before it and one after.
fn same_name_elsewhere(own_first: bool) -> World {
    World::new()
        .setting("ALLOWED_REPOSITORIES", "octo-org/a-repo,octo-org/octo-repo,octo-org/z-repo")
        .arm(|arm| arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &common::minutes_ago(30)))
        .github(move |gh| {
            let mut seeds = vec![
                ("repos/octo-org/a-repo", false),
                ("repos/octo-org/octo-repo", true),
                ("repos/octo-org/z-repo", false),
            ];
            if own_first {
                answers_late(gh, &["/octo-org/a-repo/", "/octo-org/z-repo/"]);
            } else {
                seeds.reverse();
                answers_late(gh, &["/octo-org/octo-repo/"]);
            }
            for (scope, busy) in seeds {
                gh.runner(scope, "aci-runner-4", "online", busy);
            }
            gh
        })
}

#[tokio::test]
async fn an_idle_runner_of_the_same_name_in_another_repository_does_not_make_the_sweeper_delete_a_busy_group() {
    for own_first in [true, false] {
        run_test(same_name_elsewhere(own_first), async |ctx| {
            ctx.sweep().await;
            {
                let arm = ctx.arm();
                arm.expect_groups(["aci-runner-4"]);
                assert_eq!(arm.c.count("delete"), 0, "own_first={own_first}");
                let gh = ctx.github();
                assert_eq!(gh.runners.len(), 3);
                assert_eq!(gh.c.count("delete-runner"), 0, "own_first={own_first}");
            }
            assert!(
                ctx.sweep_summary()
                    .starts_with("sweep groups=1 runners=3 deleted_terminated=0 deleted_lifetime=0 deleted_idle=0 "),
                "own_first={own_first}: {}",
                ctx.sweep_summary()
            );
        })
        .await;
    }
}

#[tokio::test]
async fn the_sweeper_deregisters_an_idle_groups_runner_only_in_the_groups_own_repository() {
    for own_first in [true, false] {
        let world = World::new()
            .setting("ALLOWED_REPOSITORIES", "octo-org/a-repo,octo-org/octo-repo,octo-org/z-repo")
            .arm(|arm| arm.seed("aci-runner-5", true, "Succeeded", Some("Running"), &common::minutes_ago(30)))
            .github(move |gh| {
                match own_first {
                    true => answers_late(gh, &["/octo-org/a-repo/", "/octo-org/z-repo/"]),
                    false => answers_late(gh, &["/octo-org/octo-repo/"]),
                }
                // All idle and online: a deregistration in the wrong repository would succeed.
                gh.runner("repos/octo-org/a-repo", "aci-runner-5", "online", false)
                    .runner("repos/octo-org/octo-repo", "aci-runner-5", "online", false)
                    .runner("repos/octo-org/z-repo", "aci-runner-5", "online", false)
            });
        run_test(world, async |ctx| {
            ctx.sweep().await;
            ctx.arm().settle().expect_groups([]);
            let gh = ctx.github();
            assert_eq!(gh.c.count("delete-runner"), 1);
            let left: Vec<&str> = gh.runners.values().map(|r| r.scope.as_str()).collect();
            assert_eq!(left, ["repos/octo-org/a-repo", "repos/octo-org/z-repo"], "own_first={own_first}");
        })
        .await;
    }
}

#[tokio::test]
async fn the_sweeper_deregisters_an_idle_groups_runner_only_in_the_groups_own_organization() {
    for own_first in [true, false] {
        let world = World::new()
            .setting("RUNNER_SCOPE", "org")
            .setting("ALLOWED_OWNERS", "acme,octo-org,zeta")
            .arm(|arm| {
                arm.seed("aci-runner-6", true, "Succeeded", Some("Running"), &common::minutes_ago(30))
                    .tag("aci-runner-6", "github-owner", "octo-org")
                    // Busy in its own organization: kept below the lifetime cap.
                    .seed("aci-runner-7", true, "Succeeded", Some("Running"), &common::minutes_ago(30))
                    .tag("aci-runner-7", "github-owner", "octo-org")
            })
            .github(move |gh| {
                match own_first {
                    true => answers_late(gh, &["/orgs/acme/", "/orgs/zeta/"]),
                    false => answers_late(gh, &["/orgs/octo-org/"]),
                }
                for org in ["orgs/acme", "orgs/octo-org", "orgs/zeta"] {
                    gh.runner(org, "aci-runner-6", "online", false);
                    gh.runner(org, "aci-runner-7", "online", org == "orgs/octo-org");
                }
                gh
            });
        run_test(world, async |ctx| {
            ctx.sweep().await;
            ctx.arm().settle().expect_groups(["aci-runner-7"]);
            let gh = ctx.github();
            assert_eq!(gh.c.count("delete-runner"), 1);
            let left: Vec<(&str, &str)> = gh.runners.values().map(|r| (r.scope.as_str(), r.name.as_str())).collect();
            assert_eq!(
                left,
                [
                    ("orgs/acme", "aci-runner-6"),
                    ("orgs/acme", "aci-runner-7"),
                    ("orgs/octo-org", "aci-runner-7"),
                    ("orgs/zeta", "aci-runner-6"),
                    ("orgs/zeta", "aci-runner-7"),
                ],
                "own_first={own_first}"
            );
        })
        .await;
    }
}

// ------------------------------------------------ a name is ours only by its exact grammar

/// Managed groups of sibling deployments (other prefixes) in our resource group, made for the
/// repository our deliveries come from, in every state the sweeper acts on.
const SIBLINGS: [(&str, &str, Option<&str>, i64); 6] = [
    ("other-1234", "Failed", None, 5),
    ("aci-runnerx-1234", "Succeeded", Some("Succeeded"), 5),
    ("aci-runner-b-1234", "Succeeded", Some("Running"), 30),
    ("aci-runner-b-1235", "Succeeded", Some("Running"), 400),
    ("aci-runner-b-2202229078-1-abcdef01", "Succeeded", Some("Running"), 30),
    ("aci-runnerx-99", "Succeeded", Some("Running"), 9000),
];

#[tokio::test]
async fn sibling_deployments_in_our_resource_group_and_repository_are_never_swept_released_or_counted() {
    let world = World::new()
        .setting("ALLOWED_REPOSITORIES", FIXTURE_REPO)
        .setting("MAX_RUNNERS", "1")
        .arm(|arm| {
            for (name, provisioning, instance, age) in SIBLINGS {
                arm.seed(name, true, provisioning, instance, &common::minutes_ago(age))
                    .tag(name, "github-repository", FIXTURE_REPO);
            }
            // One of ours, exited, so the sweeper has work.
            arm.seed("aci-runner-42", true, "Succeeded", Some("Succeeded"), &common::minutes_ago(5))
                .tag("aci-runner-42", "github-repository", FIXTURE_REPO)
        })
        .github(|gh| {
            // Their registrations, offline and idle: ghosts, if they were ours.
            for (name, ..) in SIBLINGS {
                gh.runner(&format!("repos/{FIXTURE_REPO}"), name, "offline", false);
            }
            gh.runner(&format!("repos/{FIXTURE_REPO}"), "aci-runner-42", "offline", false)
        });
    run_test(world, async |ctx| {
        // Siblings' live groups do not count against our MAX_RUNNERS of 1.
        ctx.deliver(queued(4242)).await.expect_status(202);
        // A completed job that ran on a sibling's runner is not ours to release.
        for (name, ..) in SIBLINGS {
            ctx.deliver(completed(7, Some(name)))
                .await
                .expect_status(200)
                .expect_json(json!({"ignored": format!("job ran on runner {name}, which is not ours")}));
        }
        assert_eq!(ctx.drain().await, 1, "created on the first try: siblings' groups are not counted");
        ctx.expect_log("provision op=create runner=aci-runner-4242 attempt=1 result=created")
            .await;

        ctx.sweep().await;
        let mut expected: Vec<&str> = SIBLINGS.iter().map(|s| s.0).collect();
        expected.push("aci-runner-4242");
        {
            let mut arm = ctx.arm();
            arm.settle().expect_groups(expected.iter().copied());
            let writes: Vec<&str> = arm.c.writes.iter().map(|(_, w)| w.as_str()).collect();
            assert_eq!(writes, ["put aci-runner-4242", "delete aci-runner-42"]);
            let gh = ctx.github();
            gh.expect_runners(expected.iter().copied());
            let writes: Vec<&str> = gh.c.writes.iter().map(|(_, w)| w.as_str()).collect();
            assert_eq!(writes, ["jit aci-runner-4242", "delete-runner aci-runner-42"]);
            assert_eq!(gh.c.count("get-job"), 0, "no sibling registration is taken for a ghost of ours");
        }
        assert!(
            ctx.sweep_summary()
                .starts_with("sweep groups=2 runners=2 deleted_terminated=1 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=0 "),
            "{}",
            ctx.sweep_summary()
        );
    })
    .await;
}

#[tokio::test]
async fn a_prefix_that_could_read_a_siblings_names_as_ours_is_refused_at_start() {
    let too_long = "a".repeat(aci_runners::config::MAX_PREFIX_LEN + 1);
    let cases = [
        ("ends in digits: would read aci-runner's workflow names", "aci-runner-2"),
        ("ends in zero-padded digits", "aci-runner-0042"),
        ("ends in the warm marker", "aci-runner-w"),
        ("one character past the longest that fits every name", too_long.as_str()),
    ];
    run_test(World::new().without_host(), async |ctx| {
        for (rule, prefix) in cases {
            // As the host starts it: no arguments, a port to serve.
            let out = ctx
                .cli(&[], &[("RUNNER_NAME_PREFIX", prefix), ("FUNCTIONS_CUSTOMHANDLER_PORT", "0")])
                .await;
            assert!(!out.ok, "{rule}: the handler started");
            assert!(out.stderr.contains("setting RUNNER_NAME_PREFIX: "), "{rule}: {}", out.stderr);
        }
        expect_no_call(ctx);
    })
    .await;
}

// ------------------------------------------------ input has a grammar: deliveries

const PATHS: [&str; 8] = [
    "owner/../../orgs/other",
    "owner/repo?per_page=1",
    "owner/repo#fragment",
    "owner/repo%2f..%2f..%2forgs%2fother",
    "owner/re po",
    "owner/repo/extra",
    "owner/repo\n",
    "../owner/repo",
];

#[tokio::test]
async fn a_delivery_whose_repository_holds_path_or_query_characters_is_refused_with_400() {
    run_test(World::new(), async |ctx| {
        for repository in PATHS {
            for d in [queued(1), completed(1, Some("aci-runner-1")), completed(1, None)] {
                let r = ctx.deliver(from_repository(d, repository)).await.expect_status(400);
                assert_eq!(
                    r.json()["error"],
                    json!(format!("malformed delivery: repository {repository:?} is not owner/name")),
                );
            }
        }
        ctx.expect_queued(0);
        expect_no_call(ctx);
    })
    .await;
}

#[tokio::test]
async fn a_completed_delivery_naming_a_runner_outside_our_grammar_releases_nothing() {
    let names = [
        "aci-runner-1/../../x",
        "aci-runner-1?api-version=2019-01-01",
        "aci-runner-1#x",
        "../aci-runner-1",
        "aci-runner-1%2F..%2Fx",
        "aci-runner-01",
        "aci-runner-1 ",
        "ACI-RUNNER-1",
    ];
    run_test(World::new(), async |ctx| {
        for name in names {
            ctx.deliver(completed(1, Some(name)))
                .await
                .expect_status(200)
                .expect_json(json!({"ignored": format!("job ran on runner {name}, which is not ours")}));
        }
        ctx.expect_queued(0);
        expect_no_call(ctx);
    })
    .await;
}

#[tokio::test]
async fn a_job_id_past_u64_is_refused_not_wrapped() {
    run_test(World::new(), async |ctx| {
        let body = String::from_utf8(queued(u64::MAX).body).unwrap();
        assert_eq!(body.matches("18446744073709551615").count(), 1);
        let past = body.replace("18446744073709551615", "18446744073709551616");
        let r = ctx.deliver(Delivery::new("workflow_job", past)).await.expect_status(400);
        assert!(r.json()["error"].as_str().unwrap().starts_with("malformed delivery"), "{}", r.body);
        ctx.expect_queued(0);
        expect_no_call(ctx);
    })
    .await;
}

// ------------------------------------------------ input has a grammar: queue messages

/// A create as `github-webhook` writes it, changed by `f`.
fn create(f: impl FnOnce(&mut Value)) -> String {
    let mut v = json!({"op": "create", "runner": "aci-runner-42", "repository": VICTIM, "origin": "webhook",
                       "job": 42, "run": 7, "attempt": 1, "labels": ["self-hosted", "aci"]});
    f(&mut v);
    v.to_string()
}

fn release(runner: &str, repository: &str) -> String {
    json!({"op": "release", "runner": runner, "repository": repository}).to_string()
}

/// Puts each message on the queue, drains it and checks that each was read once, dropped with
/// one `provision.dropped` line holding `why`, and that nothing else happened.
async fn expect_each_dropped_once(ctx: &Ctx, messages: &[String], why: &str) {
    for m in messages {
        ctx.host().enqueue(QUEUE, m);
    }
    assert_eq!(ctx.drain().await, messages.len(), "each message is read once, never retried");
    ctx.expect_queued(0);
    ctx.expect_poisoned(0);
    let lines = dropped(ctx);
    assert_eq!(lines.len(), messages.len(), "one line per message: {lines:#?}");
    for l in &lines {
        assert!(l.contains(why), "{l}");
    }
    expect_no_call(ctx);
    assert_eq!(ctx.vault().c.calls, Vec::<String>::new(), "not even the PAT is read");
}

#[tokio::test]
async fn a_queue_message_with_path_or_query_characters_is_dropped_once_without_a_call() {
    let messages = [
        create(|v| v["runner"] = json!("../other-rg/providers/Microsoft.ContainerInstance/containerGroups/x")),
        create(|v| v["runner"] = json!("")),
        create(|v| v["runner"] = json!("aci-runner-42?api-version=2019-01-01")),
        create(|v| v["runner"] = json!("aci-runner-42#x")),
        create(|v| v["runner"] = json!("aci-runner-42/../../x")),
        create(|v| v["runner"] = json!("aci-runner-42%2F..%2Fx")),
        create(|v| v["repository"] = json!("owner/../../orgs/other")),
        create(|v| v["repository"] = json!("octo-org/octo-repo?per_page=1")),
        create(|v| v["repository"] = json!("octo-org/octo-repo#x")),
        create(|v| v["repository"] = json!("octo-org/octo repo")),
        create(|v| v["repository"] = json!("octo-org/octo-repo/../../orgs/x")),
        create(|v| v["labels"] = json!(["self-hosted", "aci\nx"])),
        release("../other-rg/providers/Microsoft.ContainerInstance/containerGroups/victim", VICTIM),
        release("aci-runner-42?api-version=2019-01-01", VICTIM),
        release("", VICTIM),
        release("aci-runner-42", "octo-org/../../orgs/victim"),
        release("aci-runner-42", "octo-org%2Focto-repo"),
    ];
    run_test(World::new(), async |ctx| {
        expect_each_dropped_once(ctx, &messages, "error=\"message refused: ").await;
    })
    .await;
}

#[tokio::test]
async fn a_malformed_queue_message_is_dropped_once_with_a_log_line_and_no_call() {
    let messages = [
        "not JSON at all".to_string(),
        String::new(),
        r#"{"op": "create""#.to_string(),
        "[]".to_string(),
        "42".to_string(),
        r#""aci-runner-1""#.to_string(),
        "{}".to_string(),
        json!({"op": "destroy", "runner": "aci-runner-42", "repository": VICTIM}).to_string(),
        create(|v| v["op"] = json!("Create")),
        create(|v| v["origin"] = json!("evil")),
        create(|v| v["run"] = json!("7")),
        create(|v| v["job"] = json!(-1)),
        create(|v| {
            v.as_object_mut().unwrap().remove("repository");
        }),
        json!({"op": "release", "runner": "aci-runner-42"}).to_string(),
    ];
    // Messages that read, but whose name was not made from what they say.
    let refused = [
        create(|v| v["runner"] = json!("aci-runner-43")),
        create(|v| {
            v.as_object_mut().unwrap().remove("job");
        }),
        create(|v| v["origin"] = json!("workflow")),
        create(|v| {
            v["origin"] = json!("workflow");
            v["runner"] = json!("aci-runner-8-1-abcdef01");
            v.as_object_mut().unwrap().remove("job");
        }),
        create(|v| v["labels"] = json!([])),
    ];
    run_test(World::new(), async |ctx| {
        expect_each_dropped_once(ctx, &messages, "error=").await;
        let unreadable = dropped(ctx);
        assert!(unreadable.iter().all(|l| l.contains("unreadable message")), "{unreadable:#?}");
        for m in &refused {
            ctx.host().enqueue(QUEUE, m);
        }
        assert_eq!(ctx.drain().await, refused.len());
        ctx.expect_poisoned(0);
        let lines = dropped(ctx);
        assert_eq!(lines.len(), messages.len() + refused.len(), "{lines:#?}");
        for l in &lines[messages.len()..] {
            assert!(l.starts_with("provision.dropped op=create error=\"message refused: "), "{l}");
        }
        expect_no_call(ctx);
    })
    .await;
}

// ------------------------------------------------ input has a grammar: `runners`

#[tokio::test]
async fn a_crafted_runner_name_in_delete_api_runners_is_404_without_an_arm_call() {
    let names = [
        "..%2Fother-rg",
        "../other-rg/providers/Microsoft.ContainerInstance/containerGroups/victim",
        "aci-runner-1-1-deadbeef%2F..%2Fvictim",
        "aci-runner-1-1-deadbeef/../../victim",
        "aci-runner-1-1-deadbeef?api-version=2019-01-01",
        "aci-runner-1-1-deadbeef#x",
        "aci-runner-1-1-DEADBEEF",
        "aci-runner-b-1234",
        "aci-runnerx-1",
        "..",
        ".",
    ];
    run_test(World::new().setting("OIDC_AUDIENCE", AUDIENCE), async |ctx| {
        let t = token(VICTIM, RUN, 1);
        for name in names {
            delete_runner(ctx, &t, name)
                .await
                .expect_status(404)
                .expect_json(json!({"error": "no such runner"}));
        }
        expect_no_call(ctx);
        // A name of ours that names nothing costs one read.
        delete_runner(ctx, &t, "aci-runner-1-1-deadbeef").await.expect_status(404);
        assert_eq!(ctx.arm().c.calls, ["get"]);
        delete_runner(ctx, &t, "").await.expect_status(400);
        assert_eq!(ctx.arm().c.calls, ["get"]);
        ctx.expect_queued(0);
    })
    .await;
}

#[tokio::test]
async fn a_token_whose_repository_holds_path_characters_gets_no_runner() {
    run_test(World::new().setting("OIDC_AUDIENCE", AUDIENCE), async |ctx| {
        for repository in PATHS {
            let r = post_runner(ctx, &token(repository, RUN, 1), &json!({})).await.expect_status(400);
            assert_eq!(
                r.json()["error"],
                json!(format!("the token's repository {repository:?} is not owner/name"))
            );
        }
        ctx.expect_queued(0);
        expect_no_call(ctx);
    })
    .await;
}

// ------------------------------------------------ tags are data too

#[tokio::test]
async fn a_tag_with_path_characters_never_reaches_a_github_url() {
    // Anyone who may write tags in the resource group can set these.
    let world = World::new()
        .arm(|arm| {
            arm.seed("aci-runner-7", true, "Succeeded", Some("Running"), &common::minutes_ago(30))
                .tag("aci-runner-7", "github-repository", "octo-org/../../orgs/victim")
                .seed("aci-runner-8", true, "Succeeded", Some("Succeeded"), &common::minutes_ago(5))
                .tag("aci-runner-8", "github-repository", "octo-org/octo-repo?per_page=1")
        })
        .github(|gh| {
            gh.runner("orgs/victim", "aci-runner-7", "online", false)
                .runner("orgs/victim", "aci-runner-8", "online", false)
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        // The exited group goes (ARM's own name for it); the idle one's runner cannot be
        // looked for anywhere, so it is not judged idle.
        ctx.arm().settle().expect_groups(["aci-runner-7"]);
        {
            let gh = ctx.github();
            assert_eq!(gh.c.calls, Vec::<String>::new(), "no GitHub call from a tag");
            assert_eq!(gh.runners.len(), 2);
        }
        // A release naming it is refused: the group names no target.
        ctx.deliver(completed(1, Some("aci-runner-7"))).await.expect_status(202);
        ctx.drain().await;
        ctx.expect_log("provision op=release runner=aci-runner-7 attempt=1 result=\"left alone: group was made for -,")
            .await;
        ctx.arm().expect_groups(["aci-runner-7"]);
        assert_eq!(ctx.github().c.calls, Vec::<String>::new());
    })
    .await;
}

// ------------------------------------------------ our tokens go only where the settings point

#[tokio::test]
async fn a_next_page_outside_the_configured_api_is_not_followed_with_our_token() {
    const EVIL: &str = "https://api.github.test.evil.example";
    let world = World::new()
        .arm(|arm| arm.seed("aci-runner-4", true, "Succeeded", Some("Running"), &common::minutes_ago(30)))
        .github(|gh| {
            // GitHub's first page, or what looks like it, sends the next one elsewhere.
            let page = json!({"total_count": 2, "runners": [{"id": 1, "name": "aci-runner-4", "os": "linux",
                              "status": "online", "busy": false, "labels": []}]});
            gh.c.faults.push(Fault {
                only: None,
                op: "list-runners",
                times: 1,
                resp: Resp::json(200, page).with_header(
                    "link",
                    &format!(r#"<{EVIL}/repos/{VICTIM}/actions/runners?per_page=100&page=2>; rel="next""#),
                ),
            });
            gh
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        // Refused: the repository counts as unlisted, so its idle group is not judged.
        ctx.arm().expect_groups(["aci-runner-4"]);
        // (and reconciliation's own list of the repository's runs, on the configured API)
        assert_eq!(ctx.github().c.calls, ["list-runners", "list-runs"]);
        assert!(ctx.sweep_summary().contains("deleted_idle=0 "), "{}", ctx.sweep_summary());
        assert!(ctx.sweep_summary().contains(" failed=1 "), "{}", ctx.sweep_summary());
        ctx.expect_log("is outside GITHUB_API_URL").await;

        // ARM's list, the same way.
        ctx.arm().c.faults.push(Fault {
            only: None,
            op: "list",
            times: 1,
            resp: Resp::json(
                200,
                json!({"value": [], "nextLink": "https://management.azure.test.evil.example/subscriptions/x?$skipToken=1"}),
            ),
        });
        ctx.sweep().await;
        ctx.expect_log("is outside AZURE_RESOURCE_MANAGER_URL").await;
        ctx.arm().expect_groups(["aci-runner-4"]);
        assert_eq!(ctx.arm().c.count("list"), 2);
        // The harness fails the test on any host the proxy refused: none was asked for.
    })
    .await;
}

// ------------------------------------------------ ids at the limits

#[tokio::test]
async fn the_largest_job_id_gets_a_valid_arm_name_and_a_group() {
    run_test(World::new(), async |ctx| {
        let name = format!("aci-runner-{}", u64::MAX);
        ctx.deliver(queued(u64::MAX))
            .await
            .expect_status(202)
            .expect_json(json!({"accepted": "create", "runner": name}));
        ctx.drain().await;
        assert!(arm_accepts(&name), "{name}");
        {
            let arm = ctx.arm();
            arm.expect_groups([name.as_str()]);
            assert_eq!(arm.puts[0].1["tags"]["github-job-id"], "18446744073709551615");
            assert!(ctx.github().runner_named(&name).is_some());
        }
        // And it is released by its own cancelled delivery.
        ctx.deliver(completed(u64::MAX, None)).await.expect_status(202);
        ctx.drain().await;
        ctx.arm().settle().expect_groups([]);
        ctx.github().expect_runners([]);
    })
    .await;
}

#[tokio::test]
async fn the_longest_prefix_with_the_largest_run_id_and_attempt_gives_a_name_arm_accepts() {
    let prefix = "abcdefghij-klmnopqrstu";
    assert_eq!(prefix.len(), aci_runners::config::MAX_PREFIX_LEN);
    let world = World::new()
        .setting("OIDC_AUDIENCE", AUDIENCE)
        .setting("RUNNER_NAME_PREFIX", prefix);
    run_test(world, async |ctx| {
        let t = token(VICTIM, u64::MAX, u32::MAX);
        let r = post_runner(ctx, &t, &json!({"key": "k"})).await.expect_status(202);
        let name = r.json()["runner_name"].as_str().unwrap().to_string();
        assert!(name.starts_with(&format!("{prefix}-18446744073709551615-4294967295-")), "{name}");
        assert_eq!(name.len(), 63, "{name}");
        assert!(arm_accepts(&name), "{name}");
        ctx.drain().await;
        ctx.arm().expect_groups([name.as_str()]);
        ctx.github().expect_runners([name.as_str()]);

        delete_runner(ctx, &t, &name).await.expect_status(202);
        ctx.drain().await;
        ctx.arm().settle().expect_groups([]);
        ctx.github().expect_runners([]);
    })
    .await;
}

// ------------------------------------------------ one repository's share

#[tokio::test]
async fn one_repository_cannot_take_more_than_its_share_through_runners() {
    let world = World::new()
        .setting("OIDC_AUDIENCE", AUDIENCE)
        .setting("MAX_RUNNERS", "10")
        .setting("MAX_RUNNERS_PER_REPOSITORY", "2")
        .github(|gh| gh.run(RUN, "in_progress"));
    run_test(world, async |ctx| {
        let greedy = token(VICTIM, RUN, 1);
        for i in 0..5 {
            post_runner(ctx, &greedy, &json!({"key": format!("k{i}")})).await.expect_status(202);
        }
        post_runner(ctx, &token("octo-org/other-repo", RUN, 1), &json!({}))
            .await
            .expect_status(202);
        let statuses = ctx.invoke_batch().await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}\n{}", ctx.logs());
        let made_for = |ctx: &Ctx, repo: &str| {
            ctx.arm()
                .groups
                .values()
                .filter(|g| g.tags.get("github-repository").map(String::as_str) == Some(repo))
                .count()
        };
        assert_eq!(made_for(ctx, VICTIM), 2, "the share holds within a batch");
        assert_eq!(made_for(ctx, "octo-org/other-repo"), 1, "another repository still gets its runner");
        assert_eq!(ctx.github().c.count("jit"), 3, "nothing registered over the share");
        ctx.expect_log("MAX_RUNNERS_PER_REPOSITORY reached for octo-org/octo-repo").await;
        // The rest wait, they are not dropped: a slot freed is taken by one of them.
        ctx.expect_queued(3);
        {
            let mut arm = ctx.arm();
            let victim = arm
                .groups
                .values()
                .find(|g| g.tags.get("github-repository").map(String::as_str) == Some(VICTIM))
                .map(|g| g.name.clone())
                .unwrap();
            arm.fail(&victim);
        }
        let statuses = ctx.invoke_batch().await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        ctx.expect_queued(2);
    })
    .await;
}

#[tokio::test]
async fn one_repository_cannot_take_more_than_its_share_through_the_webhook() {
    let world = World::new()
        .setting("MAX_RUNNERS", "10")
        .setting("MAX_RUNNERS_PER_REPOSITORY", "2")
        .github(|gh| {
            for job in 1..=5 {
                gh.job(job, "queued");
            }
            gh
        });
    run_test(world, async |ctx| {
        for job in 1..=4 {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        ctx.deliver(from_repository(queued(5), VICTIM)).await.expect_status(202);
        let statuses = ctx.invoke_batch().await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}\n{}", ctx.logs());
        assert!(
            ctx.arm().groups.contains_key("aci-runner-5"),
            "another repository still gets its runner"
        );
        assert_eq!(ctx.github().c.count("jit"), 3);
        ctx.expect_log("MAX_RUNNERS_PER_REPOSITORY reached for Codertocat/Hello-World")
            .await;
        ctx.expect_queued(2);
    })
    .await;
}

#[tokio::test]
async fn a_delivery_list_whose_next_page_is_elsewhere_never_gets_the_app_jwt() {
    // GitHub's answer (or something in its place) points the next page of the App webhook's
    // deliveries at another host: the App JWT is not sent there, and the sweep says why.
    let world = World::new().github_app(&["Codertocat"]).github(|gh| {
        gh.c.faults.push(Fault {
            only: None,
            op: "app-deliveries",
            times: 1,
            resp: Resp::json(200, json!([])).with_header("link", r#"<https://evil.test/app/hook/deliveries?cursor=1>; rel="next""#),
        });
        gh
    });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        assert!(ctx.sweep_summary().contains("redelivered=0 failed=1"), "{}", ctx.sweep_summary());
        assert!(ctx.logs().contains("next page https://evil.test/"), "{}", ctx.logs());
        assert!(ctx.logs().contains("is outside GITHUB_API_URL"), "{}", ctx.logs());
        // The harness fails the test if the proxy was asked for evil.test.
    })
    .await;
}

// ------------------------------------------------ warm runners: names and messages

#[tokio::test]
async fn a_warm_request_that_does_not_fit_the_grammar_is_dropped_once_without_a_call() {
    let warm = |f: &dyn Fn(&mut Value)| {
        let mut v = json!({"op": "create", "runner": "aci-runner-w-abcdef01", "repository": VICTIM, "origin": "warm",
                           "run": 0, "attempt": 0, "labels": ["self-hosted", "aci"]});
        f(&mut v);
        v.to_string()
    };
    let messages = [
        warm(&|v| v["repository"] = json!("octo-org/../../orgs/other")),
        warm(&|v| v["repository"] = json!("octo-org%2Focto-repo")),
        warm(&|v| v["repository"] = json!("")),
        warm(&|v| v["runner"] = json!("aci-runner-w-ABCDEF01")),
        warm(&|v| v["runner"] = json!("aci-runner-w-abcdef01/../../x")),
        warm(&|v| v["runner"] = json!("aci-w-abcdef01")),
        warm(&|v| v["runner"] = json!("aci-runner-42")),
        warm(&|v| v["job"] = json!(42)),
        warm(&|v| v["run"] = json!(7)),
        // A job's request under a warm name.
        create(|v| v["runner"] = json!("aci-runner-w-abcdef01")),
        release("aci-runner-w-abcdef01/../x", VICTIM),
    ];
    run_test(World::new().setting("WARM_RUNNERS", "octo-org/octo-repo=1"), async |ctx| {
        expect_each_dropped_once(ctx, &messages, "error=\"message refused: ").await;
    })
    .await;
}

#[tokio::test]
async fn a_warm_request_for_an_organization_in_repo_scope_reaches_neither_github_nor_arm() {
    let m = json!({"op": "create", "runner": "aci-runner-w-abcdef01", "repository": "octo-org", "origin": "warm",
                   "run": 0, "attempt": 0, "labels": ["self-hosted", "aci"]})
    .to_string();
    run_test(World::new().setting("WARM_RUNNERS", "octo-org/octo-repo=1"), async |ctx| {
        ctx.host().enqueue(QUEUE, &m);
        assert_eq!(ctx.drain().await, 1);
        expect_no_call(ctx);
        let lines = dropped(ctx);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("does not fit RUNNER_SCOPE"), "{}", lines[0]);
    })
    .await;
}

#[tokio::test]
async fn the_warm_floor_neither_counts_nor_touches_a_siblings_or_a_forged_warm_group() {
    // Prefix `aci` shares the resource group and the repository; someone who may write tags
    // has tagged a group `warm=true` under a name outside our grammar.
    let world = World::new()
        .setting("WARM_RUNNERS", "octo-org/octo-repo=1")
        .arm(|arm| {
            arm.seed("aci-w-0000000a", true, "Succeeded", Some("Running"), &common::minutes_ago(30))
                .tag("aci-w-0000000a", "warm", "true")
                .seed(
                    "aci-runner-w-nothex00",
                    true,
                    "Succeeded",
                    Some("Running"),
                    &common::minutes_ago(30),
                )
                .tag("aci-runner-w-nothex00", "warm", "true")
                .seed(
                    "aci-runner-w-0000000b",
                    true,
                    "Succeeded",
                    Some("Running"),
                    &common::minutes_ago(900),
                )
                .tag("aci-runner-w-0000000b", "warm", "true")
        })
        .github(|gh| {
            gh.runner("repos/octo-org/octo-repo", "aci-w-0000000a", "online", false)
                .runner("repos/octo-org/octo-repo", "aci-runner-w-nothex00", "online", false)
                .runner("repos/octo-org/octo-repo", "aci-runner-w-0000000b", "online", false)
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        // Only our own warm group is seen: rotated at the lifetime cap, and replaced.
        assert!(summary.starts_with("sweep groups=1 runners=1 "), "{summary}");
        assert!(
            summary.contains("warm_floor=1 warm_requested=1 warm_rotated=1 warm_removed=0"),
            "{summary}"
        );
        ctx.arm().settle().expect_groups(["aci-runner-w-nothex00", "aci-w-0000000a"]);
        ctx.github().expect_runners(["aci-runner-w-nothex00", "aci-w-0000000a"]);
        ctx.expect_queued(1);
        ctx.drain().await;
    })
    .await;
}
