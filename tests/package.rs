//! The staged `dist/` obeys the Functions host's rules, and the contract files agree: every
//! function folder the host will find is one the handler serves, bindings carry the names the
//! code reads, every `%SETTING%` is in `local.settings.sample.json`, and every setting the code
//! reads is in the sample and the README.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn stage() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dist-{}-{n}", std::process::id()));
    let status = std::process::Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_handler"), "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

fn setting_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if after[..end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && end > 0 => {
                out.insert(after[..end].to_string());
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

#[test]
fn the_staged_layout_is_what_the_host_needs() {
    let dist = stage();
    let entries: BTreeSet<String> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = ["github-webhook", "handler", "host.json", "provision", "runners", "sweep"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(entries, expected, "exactly host.json, the handler and one folder per function");

    let host = json(&dist.join("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], "handler");
    assert_eq!(
        host["customHandler"]["enableForwardingHttpRequest"], false,
        "queue outputs need the JSON protocol"
    );
    assert!(
        host["extensionBundle"]["version"].as_str().unwrap().starts_with("[4."),
        "queues need the bundle"
    );
    use std::os::unix::fs::PermissionsExt;
    assert!(
        std::fs::metadata(dist.join("handler")).unwrap().permissions().mode() & 0o111 != 0,
        "handler is executable"
    );

    let sample = json(&root().join("local.settings.sample.json"));
    let values = sample["Values"].as_object().unwrap();
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");

    for f in ["github-webhook", "provision", "runners", "sweep"] {
        // The host's rule for function names.
        assert!(
            f.chars().next().unwrap().is_ascii_alphabetic()
                && f.len() <= 128
                && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{f}"
        );
        let text = std::fs::read_to_string(dist.join(f).join("function.json")).unwrap();
        let fj: Value = serde_json::from_str(&text).unwrap();
        for s in setting_refs(&text) {
            assert!(
                values.contains_key(&s),
                "{f}/function.json refers to %{s}%, which local.settings.sample.json lacks"
            );
        }
        let bindings = fj["bindings"].as_array().unwrap();
        let triggers: Vec<&Value> = bindings
            .iter()
            .filter(|b| b["type"].as_str().unwrap().ends_with("Trigger"))
            .collect();
        assert_eq!(triggers.len(), 1, "{f}: one trigger");
        for b in bindings {
            let (kind, name) = (b["type"].as_str().unwrap(), b["name"].as_str().unwrap());
            match kind {
                "httpTrigger" => assert_eq!(name, aci_runners::host::HTTP_TRIGGER, "{f}"),
                "http" => assert_eq!(name, aci_runners::host::HTTP_OUTPUT, "{f}"),
                "queue" => {
                    assert_eq!(name, aci_runners::functions::QUEUE_OUTPUT, "{f}");
                    assert_eq!(b["queueName"], "runner-requests", "{f}");
                    assert_eq!(b["direction"], "out", "{f}");
                }
                "queueTrigger" => {
                    assert_eq!(name, aci_runners::functions::QUEUE_TRIGGER, "{f}");
                    assert_eq!(b["queueName"], "runner-requests", "{f}");
                }
                "timerTrigger" => {
                    assert_eq!(name, aci_runners::functions::sweep::TIMER_TRIGGER, "{f}");
                    assert_eq!(b["schedule"], "%SWEEP_SCHEDULE%", "{f}");
                }
                other => panic!("{f}: unexpected binding type {other}"),
            }
            if let Some(c) = b.get("connection") {
                assert!(
                    values.contains_key(c.as_str().unwrap()),
                    "{f}: connection {c} is not in local.settings.sample.json"
                );
            }
        }
    }
    let webhook = json(&dist.join("github-webhook/function.json"));
    assert_eq!(webhook["bindings"][0]["route"], "github/webhook");
    assert_eq!(webhook["bindings"][0]["authLevel"], "function");
    let runners = json(&dist.join("runners/function.json"));
    assert_eq!(runners["bindings"][0]["authLevel"], "anonymous", "the OIDC token is the credential");
    let _ = std::fs::remove_dir_all(&dist);
}

#[test]
fn every_setting_the_code_reads_is_documented_and_in_the_sample() {
    let config = std::fs::read_to_string(root().join("src/config.rs")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let sample = json(&root().join("local.settings.sample.json"));
    let values = sample["Values"].as_object().unwrap();
    let mut names = BTreeSet::new();
    for part in config.split('"').skip(1).step_by(2) {
        if part.len() > 3 && part.contains('_') && part.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            names.insert(part.to_string());
        }
    }
    assert!(names.len() >= 30, "{names:?}");
    for n in &names {
        assert!(values.contains_key(n), "{n} is not in local.settings.sample.json");
        assert!(readme.contains(&format!("`{n}`")), "{n} is not in the README's settings table");
    }
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_fake_host_runs_what_package_sh_stages() {
    let dist = stage();
    let fake = common::host::temp_dir("stage");
    common::host::stage(&fake);
    let (a, b) = (tree(&dist), tree(&fake));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same files");
    for (name, bytes) in &a {
        assert!(*bytes == b[name], "{name} differs between scripts/package.sh and the fake host");
    }
}
