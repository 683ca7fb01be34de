//! A sweep of many managed container groups with latency injected on every ARM call.
//!
//!   cargo bench --bench sweep            (README: "Benchmarks"; results in docs/benchmarks.md)
//!
//! Runs the release `handler` under the fake Functions host and invokes the `sweep` timer once
//! per size (250, 500, 1,000 groups). Every ARM answer is delayed by 20 ms. Of the groups, 10%
//! failed to provision (the list shows it), 10% exited (only their GET shows it), the rest run
//! busy runners spread over 10 repositories. Prints the time of the sweep and the ARM and
//! GitHub calls it made, which must grow linearly with the groups.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::fakes::FakeGroup;
use common::host::FakeHost;
use common::Bench;
use serde_json::json;

const LATENCY: Duration = Duration::from_millis(20);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    println!("## Sweep benchmark (cargo bench --bench sweep)");
    println!();
    println!("ARM latency injected: {} ms per call; handler concurrency: 16", LATENCY.as_millis());
    println!();
    println!("| managed groups | sweep time | ARM calls (list pages + GETs + DELETEs) | GitHub calls | deleted | ARM calls per group |");
    println!("|---|---|---|---|---|---|");
    for n in [250usize, 500, 1000] {
        let b = Bench::new(&[]).await;
        let now = time::OffsetDateTime::now_utc();
        let created = aci_runners::clock::rfc3339(now - time::Duration::minutes(20));
        {
            let mut arm = b.arm.lock().unwrap();
            let mut gh = b.github.lock().unwrap();
            for i in 0..n {
                let name = format!("aci-runner-{}", 1_000_000 + i);
                let repo = format!("octo-org/repo-{}", i % 10);
                let (prov, inst) = match i % 10 {
                    0 => ("Failed", None),
                    1 => ("Succeeded", Some("Succeeded")),
                    _ => ("Succeeded", Some("Running")),
                };
                arm.seed(&name, true, prov, inst, &created);
                let g: &mut FakeGroup = arm.groups.get_mut(&name).unwrap();
                g.tags.insert("github-repository".into(), repo.clone());
                if i % 10 >= 2 {
                    gh.add_runner(&format!("repos/{repo}"), &name, "online", true);
                }
            }
        }
        b.arm_delay.fixed(LATENCY);
        let host = FakeHost::start(&b.settings).await;
        let t = Instant::now();
        let (status, _) = host.timer("sweep", json!(null), false).await;
        let took = t.elapsed();
        assert_eq!(status, 200);
        let (arm_calls, left) = {
            // Groups ARM is still deleting when the sweep ends count as deleted.
            let mut arm = b.arm.lock().unwrap();
            (arm.c.calls.len(), arm.settle().groups.len())
        };
        let gh_calls = b.github.lock().unwrap().c.calls.len();
        host.wait_log("sweep groups=").await;
        assert!(host.logs().contains(&format!("sweep groups={n} ")), "{}", host.logs());
        println!(
            "| {n} | {:.2} s | {arm_calls} | {gh_calls} | {} | {:.2} |",
            took.as_secs_f64(),
            n - left,
            arm_calls as f64 / n as f64
        );
        host.stop().await;
        b.assert_clean();
    }
}
