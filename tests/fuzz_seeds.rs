//! Every fuzz target's seed corpus (`fuzz/corpus/<target>/`, made from the fixtures by
//! `fuzz/make-seeds.py`) run through the same checks the targets run (`fuzz/checks.rs`), as an
//! ordinary test. The fuzzing itself is `cargo +nightly fuzz run <target>` (docs/security.md).

#[allow(dead_code)]
mod checks {
    include!("../fuzz/checks.rs");
}

use std::path::Path;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

#[test]
fn host_envelope_seeds() {
    for (name, data) in seeds("host_envelope") {
        checks::host_envelope(&data);
        if name.starts_with("http-") {
            assert!(
                aci_runners::host::http_request(&data).is_ok(),
                "{name} reads as the host's envelope"
            );
        }
    }
}

#[test]
fn webhook_delivery_seeds() {
    for (_, data) in seeds("webhook_delivery") {
        checks::webhook_delivery(&data);
    }
}

#[test]
fn queue_message_seeds() {
    for (name, data) in seeds("queue_message") {
        checks::queue_message(&data);
        let r: aci_runners::rules::request::Request = serde_json::from_slice(&data).unwrap();
        assert_eq!(r.check("aci-runner"), Ok(()), "{name}");
    }
}

#[test]
fn oidc_token_seeds() {
    for (_, data) in seeds("oidc_token") {
        checks::oidc_token(&data);
    }
}
