//! The module tree follows the data flow and has no import cycles.
//!
//! Every `crate::<module>` path in the library's non-test code is an edge from the file's
//! top-level module to `<module>`. The edges must respect the flow below (a module may only
//! import modules listed before it), which also proves the graph acyclic. Run
//! `cargo test --test architecture -- --nocapture` to print the graph.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level library modules in flow order: foundations, then the ingest stages
/// (inventory → fetch → item → partition → geoparquet → catalog; `grid` comes before `item`
/// because item parsing reads GeoJSON geometry with it), then the operations built on them.
const FLOW: &[&str] = &[
    // foundations
    "error",
    "fault",
    "clock",
    "report",
    "timestamp",
    "store",
    "schema",
    // stages
    "inventory",
    "fetch",
    "grid",
    "item",
    "partition",
    "geoparquet",
    "catalog",
    "lock",
    "hash_index",
    // the rewrite engine (merging a bucket's files) the operations share
    "rewrite",
    // operations
    "pipeline",
    "maintenance",
    "query",
    "delta",
    "server",
    "backfill",
    // generated test and benchmark data
    "synth",
    // the command line (the binary and the Python package's command run it)
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs and main.rs).
fn owner(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// Code without comments and without the items under `#[cfg(test)]` (unit-test modules and
/// test helpers, wherever they are in the file).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // Skip the item this attribute is on: up to the end of its braces (or its `;`).
            let mut depth = 0i64;
            let mut opened = false;
            for item in lines.by_ref() {
                let code = item.split("//").next().unwrap_or("");
                depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
                opened |= code.contains('{');
                if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Modules named by `crate::x` and `crate::{x, y::z}` paths.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = owner(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let deps = edges.entry(from.clone()).or_default();
        for to in imports(&code(&text)) {
            if to != from && !matches!(to.as_str(), "Error" | "Result") {
                deps.insert(to);
            }
        }
    }
    edges
}

#[test]
fn imports_follow_the_data_flow() {
    let edges = graph();
    let rank = |m: &str| FLOW.iter().position(|f| *f == m);
    let mut wrong = Vec::new();
    for (from, deps) in &edges {
        println!(
            "{from} -> {}",
            deps.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let Some(rf) = rank(from) else {
            wrong.push(format!("module {from} is not placed in FLOW"));
            continue;
        };
        for to in deps {
            match rank(to) {
                None => wrong.push(format!("{from} imports {to}, which is not placed in FLOW")),
                Some(rt) if rt >= rf => wrong.push(format!(
                    "{from} imports {to}, which comes later in the flow"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_import_parser_sees_grouped_and_plain_paths() {
    let found = imports("use crate::{a, b::c};\nlet x = crate::d::e();\n");
    assert_eq!(
        found,
        ["a", "b", "d"].iter().map(|s| s.to_string()).collect()
    );
    assert!(
        imports(&code(
            "// crate::x\nfn f() {}\n#[cfg(test)]\nmod t { crate::y }"
        ))
        .is_empty()
    );
}

/// `anyhow` (and printing) belong to the command line: every other module returns the library's
/// typed `Error`, whose variant decides exit codes and Python exception classes.
#[test]
fn only_the_command_line_uses_anyhow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let owner = owner(&src, &file);
        if owner.as_deref() == Some("cli") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        if code(&text).contains("anyhow") {
            wrong.push(file.display().to_string());
        }
    }
    assert!(wrong.is_empty(), "anyhow outside cli: {}", wrong.join(", "));
}

/// The operations (the modules after the shared stages) do not import one another: what two of
/// them share belongs to a stage (the bucket-merge engine is `rewrite`). The edges listed here
/// are the ones still to move into a stage; a new edge fails.
#[test]
fn operations_do_not_import_each_other() {
    const OPERATIONS: [&str; 6] = [
        "pipeline",
        "maintenance",
        "query",
        "delta",
        "server",
        "backfill",
    ];
    const STILL_TO_MOVE: [(&str, &str); 2] = [
        // fetch-and-parse and the failures report of ingest, used by backfill map
        ("backfill", "pipeline"),
        // the server answers with query's search
        ("server", "query"),
    ];
    let mut wrong = Vec::new();
    for (from, deps) in graph() {
        if !OPERATIONS.contains(&from.as_str()) {
            continue;
        }
        for to in deps {
            if OPERATIONS.contains(&to.as_str())
                && !STILL_TO_MOVE.contains(&(from.as_str(), to.as_str()))
            {
                wrong.push(format!("operation {from} imports operation {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
