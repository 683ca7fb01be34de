//! The layout DESIGN.md draws, kept: dependencies inside `src/` point one way. Shared files
//! use only each other; the outside-world clients (`github`, `azure`, `host`) and the pure
//! `rules` use only shared files, as does `report` (it reads the log lines back as text);
//! `functions` use those; `cli` uses everything.

use std::collections::BTreeSet;
use std::path::Path;

const SHARED: &[&str] = &["config", "http", "log", "secret", "clock", "target", "job"];

/// What each top-level module may use, besides itself.
fn allowed(module: &str) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = SHARED.to_vec();
    match module {
        "github" | "azure" | "host" | "rules" | "report" => {}
        "functions" => v.extend(["github", "azure", "host", "rules"]),
        "cli" => v.extend(["github", "azure", "host", "rules", "functions", "report"]),
        // Shared files: only the ones below them (config reads the retry policy's type,
        // target reads the scope).
        "config" => v = vec!["http"],
        "target" => v = vec!["config"],
        "http" | "log" | "secret" | "clock" | "job" => v = vec![],
        other => panic!("src/{other} is not on the map in tests/layout.rs and lib.rs"),
    }
    v
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn dependencies_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut wrong = BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let allowed = allowed(&module);
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if line.trim_start().starts_with("//") {
                continue; // doc links may point anywhere
            }
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used != module && !allowed.contains(&used.as_str()) {
                    wrong.insert(format!("src/{} uses crate::{used}", rel.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layout:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}
