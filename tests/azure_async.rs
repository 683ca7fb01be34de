//! Azure is asynchronous ("No job left behind" in DESIGN.md): a container group PUT or DELETE
//! is a long-running operation, a group is `Deleting` for a while after its DELETE was accepted,
//! lists carry `tags: null`, and a group may have no `created-at` tag but always has ARM's
//! `systemData.createdAt`. First the ARM fake is held to that, call by call; then the handler
//! is run against it.

mod common;

use common::fakes::{arm, arm_handler, Arm, API_VERSION, MI_TOKEN, RESOURCE_GROUP, SUBSCRIPTION};
use common::net::{Req, Resp};
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- the fake, call by call

fn list_path() -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerInstance/containerGroups")
}

fn group_path(name: &str) -> String {
    format!("{}/{name}", list_path())
}

/// One call to the fake as the handler would make it: `url` is a path or a full URL (the
/// `Location` or `Azure-AsyncOperation` of an answer).
fn call(arm: &Arm, method: &str, url: &str, body: Value) -> Resp {
    let url = url.strip_prefix("https://management.azure.test").unwrap_or(url);
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.to_string(), format!("api-version={API_VERSION}")),
    };
    let req = Req {
        method: method.into(),
        path,
        query,
        headers: [("authorization".to_string(), format!("Bearer {MI_TOKEN}"))].into(),
        body: if body.is_null() {
            Default::default()
        } else {
            serde_json::to_vec(&body).unwrap().into()
        },
    };
    arm_handler(arm.clone())(req)
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body(r: &Resp) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

fn provisioning(r: &Resp) -> Value {
    body(r)["properties"]["provisioningState"].clone()
}

fn runner_group() -> Value {
    json!({"location": "westeurope", "tags": {"managed-by": "aci-runners"},
           "properties": {"osType": "Linux", "restartPolicy": "Never",
                          "containers": [{"name": "runner", "properties": {"image": "ghcr.io/actions/actions-runner:latest",
                              "environmentVariables": [{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": "jit"}]}}]}})
}

#[test]
fn a_put_is_a_long_running_operation() {
    let arm = arm();
    let put = call(&arm, "PUT", &group_path("g1"), runner_group());
    assert_eq!(put.status, 201);
    assert_eq!(provisioning(&put), "Creating");
    assert_eq!(
        body(&put)["properties"]["containers"][0]["properties"]["environmentVariables"][0]["secureValue"],
        Value::Null,
        "ARM never returns a secure value"
    );
    let operation = header(&put, "azure-asyncoperation").expect("Azure-AsyncOperation").to_string();
    let location = header(&put, "location").expect("Location").to_string();
    assert!(operation.contains("/providers/Microsoft.ContainerInstance/locations/westeurope/operations/"));
    assert!(header(&put, "retry-after").is_some());

    // The next two calls see it under way, the third sees it done.
    let status = call(&arm, "GET", &operation, Value::Null);
    assert_eq!((status.status, body(&status)["status"].clone()), (200, json!("InProgress")));
    let get = call(&arm, "GET", &group_path("g1"), Value::Null);
    assert_eq!(provisioning(&get), "Creating");
    let get = call(&arm, "GET", &group_path("g1"), Value::Null);
    assert_eq!(provisioning(&get), "Succeeded");
    assert_eq!(body(&get)["properties"]["instanceView"]["state"], "Running");
    assert_eq!(body(&call(&arm, "GET", &operation, Value::Null))["status"], "Succeeded");
    let result = call(&arm, "GET", &location, Value::Null);
    assert_eq!((result.status, body(&result)["name"].clone()), (200, json!("g1")));

    // A PUT of a group that exists is an update.
    let again = call(&arm, "PUT", &group_path("g1"), runner_group());
    assert_eq!((again.status, provisioning(&again)), (200, json!("Updating")));
    let s = arm.lock().unwrap();
    assert_eq!(s.c.count("put"), 2);
    assert_eq!(s.c.count("operation"), 2);
    assert_eq!(s.c.count("operation-result"), 1);
    assert!(s.c.unexpected.is_empty(), "{:?}", s.c.unexpected);
}

#[test]
fn a_create_the_test_fails_ends_failed_and_only_that_one() {
    let arm = arm();
    arm.lock().unwrap().fail_next_create("g2");
    let put = call(&arm, "PUT", &group_path("g2"), runner_group());
    assert_eq!(provisioning(&put), "Creating");
    let operation = header(&put, "azure-asyncoperation").unwrap().to_string();
    arm.lock().unwrap().settle();
    assert_eq!(provisioning(&call(&arm, "GET", &group_path("g2"), Value::Null)), "Failed");
    let status = body(&call(&arm, "GET", &operation, Value::Null));
    assert_eq!(status["status"], "Failed");
    assert_eq!(status["error"]["code"], "InaccessibleImage");
    let location = header(&put, "location").unwrap().to_string();
    assert_eq!(call(&arm, "GET", &location, Value::Null).status, 400);

    // The next create of that name succeeds.
    call(&arm, "PUT", &group_path("g2"), runner_group());
    arm.lock().unwrap().settle();
    assert_eq!(arm.lock().unwrap().state("g2"), ("Succeeded", Some("Running")));
}

#[test]
fn a_delete_is_a_long_running_operation_and_a_put_waits_for_it() {
    let arm = arm();
    arm.lock()
        .unwrap()
        .delete_takes(10)
        .seed("g3", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z");
    let delete = call(&arm, "DELETE", &group_path("g3"), Value::Null);
    assert_eq!(delete.status, 202);
    assert_eq!(provisioning(&delete), "Deleting");
    let operation = header(&delete, "azure-asyncoperation").unwrap().to_string();
    let location = header(&delete, "location").unwrap().to_string();

    // Still there while ARM deletes it, in GET and list, and not to be made again.
    let put = call(&arm, "PUT", &group_path("g3"), runner_group());
    assert_eq!(put.status, 409);
    assert_eq!(body(&put)["error"]["code"], "ContainerGroupTransitioning");
    assert_eq!(
        body(&put)["error"]["message"],
        "The container group 'g3' is still transitioning, please retry later."
    );
    let list = call(&arm, "GET", &list_path(), Value::Null);
    assert_eq!(body(&list)["value"][0]["properties"]["provisioningState"], "Deleting");
    let location_poll = call(&arm, "GET", &location, Value::Null);
    assert_eq!(location_poll.status, 202, "Location answers 202 while the operation runs");
    // A DELETE repeated meanwhile is the same operation.
    let repeated = call(&arm, "DELETE", &group_path("g3"), Value::Null);
    assert_eq!(repeated.status, 202);
    assert_eq!(header(&repeated, "azure-asyncoperation"), Some(operation.as_str()));

    arm.lock().unwrap().settle();
    assert_eq!(call(&arm, "GET", &group_path("g3"), Value::Null).status, 404);
    assert_eq!(body(&call(&arm, "GET", &operation, Value::Null))["status"], "Succeeded");
    assert_eq!(call(&arm, "GET", &location, Value::Null).status, 204);
    assert_eq!(
        call(&arm, "DELETE", &group_path("g3"), Value::Null).status,
        204,
        "nothing to delete"
    );
    assert_eq!(call(&arm, "PUT", &group_path("g3"), runner_group()).status, 201, "the name is free");
    let s = arm.lock().unwrap();
    assert_eq!(s.refused_puts, ["g3"]);
    assert!(s.event_seq("gone g3") < s.c.writes.iter().rev().find(|(_, w)| w == "put g3").map(|(q, _)| *q));
}

#[test]
fn how_long_an_operation_takes_is_the_tests_to_say() {
    let arm = arm();
    {
        let mut s = arm.lock().unwrap();
        s.create_takes(0).delete_takes(5);
    }
    let put = call(&arm, "PUT", &group_path("g4"), runner_group());
    assert_eq!((put.status, provisioning(&put)), (201, json!("Succeeded")), "done at once");
    assert!(header(&put, "azure-asyncoperation").is_none());
    call(&arm, "DELETE", &group_path("g4"), Value::Null);
    for _ in 0..4 {
        assert_eq!(provisioning(&call(&arm, "GET", &group_path("g4"), Value::Null)), "Deleting");
    }
    assert_eq!(call(&arm, "GET", &group_path("g4"), Value::Null).status, 404);

    arm.lock()
        .unwrap()
        .delete_takes(0)
        .seed("g5", true, "Succeeded", Some("Running"), "");
    let delete = call(&arm, "DELETE", &group_path("g5"), Value::Null);
    assert_eq!(delete.status, 200, "a delete done at once answers 200 with the group");
    assert_eq!(call(&arm, "GET", &group_path("g5"), Value::Null).status, 404);
}

#[test]
fn lists_write_null_tags_and_every_group_has_system_data() {
    let arm = arm();
    {
        let mut s = arm.lock().unwrap();
        s.seed("a-untagged", false, "Succeeded", Some("Running"), "")
            .untagged("a-untagged")
            .seed("b-managed", true, "Succeeded", Some("Running"), "2026-11-28T10:00:00Z")
            .untag("b-managed", "created-at")
            .made_by_arm_at("b-managed", "2026-11-27T09:30:00Z");
    }
    let list = body(&call(&arm, "GET", &list_path(), Value::Null));
    let value = list["value"].as_array().unwrap();
    assert_eq!(value[0]["tags"], Value::Null, "{list}");
    assert!(value[1]["tags"].get("created-at").is_none());
    assert_eq!(value[1]["systemData"]["createdAt"], "2026-11-27T09:30:00.0000000Z");
    for g in value {
        assert!(g["systemData"]["createdAt"].is_string(), "{g}");
        assert!(g["properties"].get("instanceView").is_none(), "the list carries no instance view");
    }
    let get = body(&call(&arm, "GET", &group_path("a-untagged"), Value::Null));
    assert_eq!(get["tags"], Value::Null);
    assert!(get["systemData"]["createdAt"].is_string());
}

#[test]
fn a_call_arm_does_not_have_is_unexpected() {
    let arm = arm();
    call(&arm, "POST", &format!("{}/restart", group_path("g6")), Value::Null);
    call(
        &arm,
        "GET",
        &format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerInstance/locations/westeurope/operationStatuses/x"),
        Value::Null,
    );
    assert_eq!(arm.lock().unwrap().c.unexpected.len(), 2);
}

// ---------------------------------------------------------------- the handler against it

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

/// Sequence numbers of the PUTs ARM accepted for `name`.
fn puts_of(ctx: &Ctx, name: &str) -> Vec<u64> {
    let put = format!("put {name}");
    ctx.arm().c.writes.iter().filter(|(_, w)| *w == put).map(|(s, _)| *s).collect()
}

/// Fails the test if `provision` ever said a group of this name was the job's runner.
#[track_caller]
fn never_exists(ctx: &Ctx, name: &str) {
    let runner = format!("runner={name} ");
    let said: Vec<String> = ctx
        .logs()
        .lines()
        .filter(|l| l.contains(&runner) && l.contains("result=exists"))
        .map(str::to_string)
        .collect();
    assert!(said.is_empty(), "a group that is going or gone is no runner for the job: {said:?}");
}

/// Fails the test unless `provision` created `name`'s group in the end.
#[track_caller]
fn created(ctx: &Ctx, name: &str) {
    let line = format!("provision op=create runner={name} ");
    assert!(
        ctx.logs().lines().any(|l| l.starts_with(&line) && l.contains("result=created")),
        "{}",
        ctx.logs()
    );
}

/// (a) A job whose group ARM is deleting, still queued, gets a new group once the old one is
/// gone: the create waits, it never says `exists`.
#[tokio::test]
async fn a_job_whose_group_is_deleting_gets_a_new_group_once_it_is_gone() {
    let world = World::new()
        .arm(|arm| {
            // The sweeper deleted it after its container exited; ARM is still at it.
            arm.seed("aci-runner-4300", true, "Deleting", Some("Failed"), &common::minutes_ago(10))
                .tag("aci-runner-4300", "github-repository", "Codertocat/Hello-World")
                .tag("aci-runner-4300", "github-job-id", "4300")
                .tag("aci-runner-4300", "origin", "webhook")
        })
        .github(|gh| gh.job(4300, "queued"));
    run_test(world, async |ctx| {
        ctx.deliver(queued(4300)).await.expect_status(202);
        ctx.drain().await;
        never_exists(ctx, "aci-runner-4300");
        created(ctx, "aci-runner-4300");
        let puts = puts_of(ctx, "aci-runner-4300");
        {
            let mut arm = ctx.arm();
            assert_eq!(puts.len(), 1, "one new group");
            let gone = arm.event_seq("gone aci-runner-4300").expect("the old group went");
            assert!(gone < puts[0], "made once the old one was gone");
            arm.settle();
            assert_eq!(arm.state("aci-runner-4300"), ("Succeeded", Some("Running")));
            assert_eq!(arm.puts.last().unwrap().1["tags"]["github-job-id"], "4300");
        }
        ctx.github().expect_runners(["aci-runner-4300"]);
    })
    .await;
}

/// (b) A job whose group ended before it ran (ARM failed to create it, or its container exited)
/// while the job is still queued gets a new group when the job is asked for again (GitHub's
/// redelivery, the sweeper's reconcile): the old one goes first, then a new one is made.
#[tokio::test]
async fn a_job_whose_group_ended_before_it_ran_gets_a_new_group() {
    let world = World::new()
        .arm(|arm| arm.fail_next_create("aci-runner-4310"))
        .github(|gh| gh.job(4310, "queued").job(4311, "queued"));
    run_test(world, async |ctx| {
        for job in [4310, 4311] {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        ctx.drain().await;
        {
            let mut arm = ctx.arm();
            arm.settle();
            assert_eq!(arm.state("aci-runner-4310").0, "Failed", "the image would not pull");
            arm.container_exits("aci-runner-4311", "Failed");
        }
        // The job is asked for again while it is still queued.
        for job in [4310, 4311] {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        ctx.drain().await;
        for name in ["aci-runner-4310", "aci-runner-4311"] {
            never_exists(ctx, name);
            let puts = puts_of(ctx, name);
            assert_eq!(puts.len(), 2, "{name}: made, then made anew");
            let gone = ctx.arm().event_seq(&format!("gone {name}"));
            assert!(
                gone.is_some_and(|g| g < puts[1]),
                "{name}: the ended group went before the new one was made"
            );
        }
        ctx.arm().settle().expect_groups(["aci-runner-4310", "aci-runner-4311"]);
        for name in ["aci-runner-4310", "aci-runner-4311"] {
            assert_eq!(ctx.arm().state(name), ("Succeeded", Some("Running")), "{name}");
        }
        ctx.github().expect_runners(["aci-runner-4310", "aci-runner-4311"]);
    })
    .await;
}

/// (c) `tags: null` on a list page (untagged groups someone else made) stalls neither a sweep
/// nor a create, on either page.
#[tokio::test]
async fn a_list_page_with_null_tags_stalls_neither_a_sweep_nor_a_create() {
    let world = World::new()
        .arm(|arm| {
            arm.page_size = 2;
            arm.seed("aci-runner-4320", true, "Failed", None, &common::minutes_ago(5)) // ARM gave up
                .seed("aci-runner-4321", true, "Succeeded", Some("Running"), &common::minutes_ago(5)) // booting
                .seed("aci-runner-9", false, "Succeeded", Some("Succeeded"), &common::minutes_ago(9000))
                .untagged("aci-runner-9") // named like ours, but not tagged: never touched
                .seed("build-cache", false, "Succeeded", Some("Running"), "")
                .untagged("build-cache")
        })
        .github(|gh| gh.runner(REPO, "aci-runner-4321", "offline", false));
    run_test(world, async |ctx| {
        ctx.sweep().await;
        assert_eq!(
            ctx.sweep_summary(),
            "sweep groups=2 runners=1 deleted_terminated=1 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=0 kept=0 requeued=0 reconciled=0 redelivered=0 failed=0 dry_run=false past_due=false"
        );
        assert_eq!(deletes_accepted(ctx), ["aci-runner-4320"]);
        assert_eq!(ctx.arm().c.count("list"), 2, "both pages read");

        ctx.deliver(queued(4330)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 1, "created on the first try");
        created(ctx, "aci-runner-4330");
        ctx.arm().settle().expect_groups([
            "aci-runner-4321",
            "aci-runner-4330",
            "aci-runner-9",
            "build-cache",
        ]);
    })
    .await;
}

/// (d) A managed group without its `created-at` tag ages from ARM's `systemData.createdAt`:
/// past the lifetime cap or idle too long, it goes; a young one stays.
#[tokio::test]
async fn a_managed_group_without_created_at_ages_out_by_system_data() {
    let world = World::new()
        .arm(|arm| {
            for (name, age) in [("aci-runner-4340", 400), ("aci-runner-4341", 30), ("aci-runner-4342", 5)] {
                arm.seed(name, true, "Succeeded", Some("Running"), &common::minutes_ago(age))
                    .untag(name, "created-at");
            }
            arm
        })
        .github(|gh| {
            gh.runner(REPO, "aci-runner-4340", "online", false)
                .runner(REPO, "aci-runner-4341", "online", false)
                .runner(REPO, "aci-runner-4342", "offline", false)
        });
    run_test(world, async |ctx| {
        assert!(ctx.arm().groups.values().all(|g| !g.tags.contains_key("created-at")));
        ctx.sweep().await;
        assert_eq!(
            ctx.sweep_summary(),
            "sweep groups=3 runners=3 deleted_terminated=0 deleted_lifetime=1 deleted_idle=1 deregistered_ghosts=0 kept=0 requeued=0 reconciled=0 redelivered=0 failed=0 dry_run=false past_due=false"
        );
        assert_eq!(deletes_accepted(ctx), ["aci-runner-4340", "aci-runner-4341"]);
        ctx.arm().settle().expect_groups(["aci-runner-4342"]);
        ctx.github().expect_runners(["aci-runner-4342"]);
    })
    .await;
}
