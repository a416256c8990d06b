//! The layering of the host's crates (see `docs/architecture.md`): the crate graph points down
//! only, and the rules the graph cannot express hold in the sources.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each host crate and the patchbay crates it may depend on (normal and dev dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("crypto", &["patchbay-registry"]),
    ("store", &["patchbay-core"]),
    ("runtime", &["patchbay-core", "patchbay-crypto", "patchbay-registry"]),
    ("services", &["patchbay-core", "patchbay-crypto", "patchbay-store", "patchbay-runtime", "patchbay-registry"]),
    (
        "api",
        &[
            "patchbay-core",
            "patchbay-crypto",
            "patchbay-store",
            "patchbay-runtime",
            "patchbay-services",
            "patchbay-registry",
        ],
    ),
    ("dev", &["patchbay-core", "patchbay-store", "patchbay-runtime"]),
    (
        "cli",
        &[
            "patchbay-core",
            "patchbay-crypto",
            "patchbay-store",
            "patchbay-runtime",
            "patchbay-services",
            "patchbay-api",
            "patchbay-dev",
            "patchbay-registry",
        ],
    ),
];

/// The crates below the API: none of them may know HTTP or the API's error codes.
const BELOW_THE_API: &[&str] = &["core", "crypto", "store", "runtime", "services"];

fn host_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host")
}

fn patchbay_deps(manifest: &toml::Table) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(section).and_then(toml::Value::as_table) {
            deps.extend(t.keys().filter(|k| k.starts_with("patchbay")).cloned());
        }
    }
    deps
}

#[test]
fn host_crates_depend_only_on_lower_layers() {
    let dirs: BTreeSet<String> = std::fs::read_dir(host_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = ALLOWED.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(dirs, known, "every crate under host/ has a place in the layer table (and no other)");
    for (krate, allowed) in ALLOWED {
        let text = std::fs::read_to_string(host_dir().join(krate).join("Cargo.toml")).unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        for dep in patchbay_deps(&manifest) {
            assert!(
                allowed.contains(&dep.as_str()),
                "host/{krate} depends on {dep}, which is not below it (allowed: {allowed:?}); see docs/architecture.md"
            );
        }
    }
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    out
}

/// Code lines only: comments and doc comments may mention anything.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim_start().starts_with("//"))
}

/// The error codes `host/api/src/error.rs` gives the domain's error kinds.
fn api_error_codes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(host_dir().join("api/src/error.rs")).unwrap();
    let mut codes = BTreeSet::new();
    for (_, line) in code_lines(&text) {
        // `Missing::Hook => "unknown_hook",` and `(S::NOT_FOUND, "not_found")`.
        for piece in line.split('"').skip(1).step_by(2) {
            let before = line.split(&format!("\"{piece}\"")).next().unwrap_or("");
            let is_code = piece.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && piece.contains('_')
                && (before.trim_end().ends_with("=>") || before.trim_end().ends_with(','));
            if is_code {
                codes.insert(piece.to_string());
            }
        }
    }
    codes
}

#[test]
fn nothing_below_the_api_knows_http_or_compares_api_error_codes() {
    let codes = api_error_codes();
    assert!(codes.contains("quota_exceeded") && codes.contains("not_found"), "{codes:?}");
    let mut problems = Vec::new();
    for krate in BELOW_THE_API {
        for (path, text) in sources(&host_dir().join(krate).join("src")) {
            for (n, line) in code_lines(&text) {
                for token in ["axum::", "StatusCode", "http::StatusCode"] {
                    if line.contains(token) {
                        problems.push(format!("{}:{n}: names `{token}`", path.display()));
                    }
                }
                for code in &codes {
                    let quoted = format!("\"{code}\"");
                    let compared = [format!("== {quoted}"), format!("!= {quoted}"), format!("{quoted} =>")]
                        .iter()
                        .any(|p| line.contains(p.as_str()))
                        || (line.contains(&quoted) && (line.contains("matches!") || line.contains(".code")));
                    if compared {
                        problems.push(format!("{}:{n}: compares the API error code {quoted}", path.display()));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "below the API, decide on error kinds, not HTTP:\n{}", problems.join("\n"));
}

#[test]
fn handlers_never_reach_into_the_store() {
    let mut problems = Vec::new();
    for (path, text) in sources(&host_dir().join("api/src")) {
        for (n, line) in code_lines(&text) {
            let names_store = line.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == "Store");
            if names_store || line.contains(".store()") || line.contains("Store::") {
                problems.push(format!("{}:{n}: {}", path.display(), line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "the API calls services, never the store:\n{}", problems.join("\n"));
}

/// Only a connector's operations (`lifecycle` and its hub interface) are callable: outside the
/// runtime's own definition, no host crate calls a function that reaches any other export.
#[test]
fn the_host_calls_operations_only() {
    let mut problems = Vec::new();
    for krate in ALLOWED.iter().map(|(c, _)| *c) {
        for (path, text) in sources(&host_dir().join(krate).join("src")) {
            if path.ends_with("runtime/src/dynamic/mod.rs") {
                continue;
            }
            for (n, line) in code_lines(&text) {
                for token in ["invoke_export", "exported_functions()"] {
                    if line.contains(token) && !(token == "exported_functions()" && krate == "cli") {
                        problems.push(format!("{}:{n}: {}", path.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "the host calls operations, not other exports:\n{}", problems.join("\n"));
}
