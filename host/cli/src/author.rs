//! Commands for connector authors that run offline, on files: `patchbay wit` writes the host's WIT
//! package, `connector pack` embeds a manifest into any component, `connector check` validates a
//! component the way an upload does and says how to fix what it finds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use patchbay_registry::{ComponentNames, PackageError, PackageLimits, WIT_PACKAGE, WIT_VERSION};
use patchbay_runtime::{Runtime, RuntimeConfig, Services};

/// Where the commands that run components locally (`run`, `bench`, `check`, `connector test`)
/// keep compiled components, so the same bytes compile once: `PATCHBAY_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/patchbay/compiled`, else `~/.cache/patchbay/compiled`; `None` (no disk
/// cache) when none of them is set.
pub(crate) fn local_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("PATCHBAY_CACHE_DIR") {
        return Some(dir);
    }
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("patchbay").join("compiled"))
}

/// A runtime for local commands, with the shared compile cache.
pub(crate) fn local_runtime(mut config: RuntimeConfig, services: Services) -> anyhow::Result<Runtime> {
    config.cache_dir = local_cache_dir();
    // Large toolchain outputs (Python, JavaScript) take tens of seconds to compile.
    config.compile_timeout = config.compile_timeout.max(std::time::Duration::from_secs(600));
    Runtime::new(config, services)
}

/// `patchbay wit [DIR]`.
pub(crate) fn wit(dir: &Path) -> anyhow::Result<i32> {
    let written = patchbay_registry::wit::write_to(dir).with_context(|| format!("writing to {}", dir.display()))?;
    for p in &written {
        println!("{}", p.display());
    }
    println!("{WIT_PACKAGE}@{WIT_VERSION}: {} files in {}", written.len(), dir.display());
    Ok(0)
}

/// `patchbay connector pack FILE --manifest TOML [--out OUT]`.
pub(crate) fn pack(file: &Path, manifest: &Path, out: Option<PathBuf>) -> anyhow::Result<i32> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let packed = patchbay_registry::pack(&wasm, &text).with_context(|| format!("packing {}", file.display()))?;
    let out = out.unwrap_or_else(|| file.to_path_buf());
    std::fs::write(&out, &packed).with_context(|| format!("writing {}", out.display()))?;
    println!("{}: manifest from {} embedded ({} bytes)", out.display(), manifest.display(), packed.len());
    Ok(0)
}

/// What `check` found, printed as it goes; the exit code is 1 when anything would stop an upload.
#[derive(Default)]
struct Findings {
    problems: usize,
}

impl Findings {
    fn problem(&mut self, text: &str) {
        self.problems += 1;
        println!("  ✗ {text}");
    }

    fn hint(&self, text: &str) {
        println!("    hint: {text}");
    }
}

/// Advice for what a component imports, by toolchain mistake.
fn import_hints(names: &ComponentNames, f: &mut Findings) {
    let own = format!("{WIT_PACKAGE}/");
    for import in &names.imports {
        if import.starts_with("wasi:http/") {
            f.problem(&format!("imports {import}, which the host does not provide"));
            f.hint(patchbay_runtime::hub::WASI_HTTP_FIX);
        } else if let Some(rest) = import.strip_prefix(&own) {
            if !rest.ends_with(&format!("@{WIT_VERSION}")) {
                f.problem(&format!("imports {import}, but this host serves {WIT_PACKAGE}@{WIT_VERSION}"));
                f.hint("build against the host's WIT: `patchbay wit wit/` writes it (also served at GET /v1/wit)");
            }
        } else if !import.starts_with("wasi:") {
            f.problem(&format!("imports {import}, which the host does not provide"));
            f.hint(&format!(
                "a connector may import only {WIT_PACKAGE} interfaces and WASI 0.2 (cli, io, clocks, random, \
                 filesystem without directories)"
            ));
        }
    }
}

/// `patchbay connector check FILE`.
pub(crate) async fn check(file: &Path) -> anyhow::Result<i32> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    println!("{} ({})", file.display(), human_size(wasm.len()));
    let mut f = Findings::default();
    let limits = PackageLimits::default();
    let manifest = match patchbay_registry::inspect(&wasm, &limits) {
        Ok(p) => {
            let m = &p.manifest;
            println!("  ✓ manifest: {} {} — {} ({})", m.id, m.version, m.title, m.category);
            if let Some(sig) = &p.signature {
                println!("  ✓ signed with key {}", sig.key_id);
            }
            Some(p.manifest)
        }
        Err(e) => {
            f.problem(&e.to_string());
            match e {
                PackageError::MissingManifest => f.hint(
                    "write connector.toml (see docs/manifest.md, or `patchbay connector new` for a template) and \
                     embed it: `patchbay connector pack FILE.wasm --manifest connector.toml`",
                ),
                PackageError::TooLarge { .. } => f.hint(
                    "Python and JavaScript components carry their interpreter (12–20 MB); strip debug info and \
                     unused modules, or ask the operator to raise the upload limit",
                ),
                PackageError::NotAComponent => {
                    f.hint("`patchbay connector build` produces a component for Rust, Python and JavaScript")
                }
                _ => {}
            }
            None
        }
    };
    let Some(names) = patchbay_registry::component_names(&wasm) else {
        f.problem("not a WebAssembly component whose sections can be read");
        return Ok(finish(&f));
    };
    import_hints(&names, &mut f);
    let lifecycle = format!("{WIT_PACKAGE}/lifecycle@{WIT_VERSION}");
    if !names.exports.contains(&lifecycle) {
        f.problem(&format!("does not export {lifecycle}"));
        f.hint(&format!(
            "build against one of the worlds of {WIT_PACKAGE} (e.g. `notification-provider`); each includes the \
             `lifecycle` export"
        ));
    }
    if f.problems > 0 && names.imports.iter().any(|i| i.starts_with("wasi:http/")) {
        // Linking would only repeat the missing wasi:http.
        return Ok(finish(&f));
    }
    let runtime =
        local_runtime(RuntimeConfig { max_concurrent_calls: 1, ..RuntimeConfig::default() }, Services::in_memory())?;
    let started = Instant::now();
    let expected = manifest.as_ref().map(|m| m.category);
    match runtime.load_for("", wasm, expected).await {
        Ok(c) => {
            println!(
                "  ✓ links against the host's imports ({}, {:.1} s{})",
                c.hub.map_or("no hub".to_string(), |h| format!("world {}", h.world())),
                started.elapsed().as_secs_f64(),
                match c.loaded_from {
                    patchbay_runtime::CacheHit::Compiled => ", compiled now",
                    _ => ", from the compile cache",
                }
            );
            println!("  operations:");
            for op in c.operations() {
                let unsupported =
                    op.unsupported().map(|r| format!("  (not callable with JSON: {r})")).unwrap_or_default();
                println!("    {}{unsupported}", op.qualified_name());
            }
            let other: Vec<String> = c
                .exported_functions()
                .iter()
                .filter(|op| !patchbay_runtime::dynamic::is_operation(op))
                .map(|op| op.qualified_name())
                .collect();
            if !other.is_empty() {
                println!("  other exports (not operations: never listed or callable): {}", other.join(", "));
            }
            println!("  imports:");
            for i in &names.imports {
                println!("    {i}");
            }
        }
        Err(e) => {
            f.problem(&format!("does not load: {e}"));
            if manifest.is_some() && e.to_string().contains("category") {
                f.hint("the manifest's `category` names the world the component must be built for");
            }
        }
    }
    Ok(finish(&f))
}

fn finish(f: &Findings) -> i32 {
    if f.problems == 0 {
        println!("ok: the host accepts this component");
        0
    } else {
        println!("{} problem(s): the host would refuse this component", f.problems);
        1
    }
}

fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// The language a connector project is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// Reads the language from the files a project holds.
    fn detect(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Some(Lang::Rust)
        } else if dir.join("app.py").is_file() {
            Some(Lang::Python)
        } else if dir.join("app.js").is_file() {
            Some(Lang::Js)
        } else {
            None
        }
    }
}

fn run_tool(command: &mut std::process::Command, what: &str, hint: &str) -> anyhow::Result<()> {
    let status = command.status().map_err(|e| anyhow::anyhow!("cannot run {what}: {e}; {hint}"))?;
    if !status.success() {
        anyhow::bail!("{what} failed ({status})");
    }
    Ok(())
}

/// `patchbay connector build [DIR] [--out FILE]`: builds the project in `dir` with its language's
/// toolchain against the WIT in `dir/wit` (written from the host's package when missing) and
/// embeds `dir/connector.toml`.
pub(crate) fn build(dir: &Path, out: Option<PathBuf>) -> anyhow::Result<i32> {
    let started = Instant::now();
    let manifest_path = dir.join("connector.toml");
    let text =
        std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest =
        patchbay_registry::Manifest::parse_toml(&text).with_context(|| format!("{}", manifest_path.display()))?;
    let world = manifest.category.world();
    let Some(lang) = Lang::detect(dir) else {
        anyhow::bail!(
            "{} holds no Cargo.toml, app.py or app.js; `patchbay connector new` creates a project",
            dir.display()
        );
    };
    let wit = dir.join("wit");
    if !wit.join("worlds.wit").is_file() {
        patchbay_registry::wit::write_to(&wit).with_context(|| format!("writing {}", wit.display()))?;
    }
    let out = out.unwrap_or_else(|| dir.join(format!("{}.wasm", manifest.id)));
    let raw = out.with_extension("raw.wasm");
    match lang {
        Lang::Rust => {
            let output = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
                .current_dir(dir)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| anyhow::anyhow!("cannot run cargo: {e}; install Rust from https://rustup.rs"))?;
            if !output.status.success() {
                anyhow::bail!(
                    "cargo build failed ({}); if the target is missing: rustup target add wasm32-wasip2",
                    output.status
                );
            }
            let built = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|m| m["reason"] == "compiler-artifact")
                .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .rfind(|f| f.extension().is_some_and(|x| x == "wasm"))
                .ok_or_else(|| anyhow::anyhow!("cargo built no .wasm; is the crate a `cdylib`?"))?;
            std::fs::copy(&built, &raw).with_context(|| format!("copying {}", built.display()))?;
        }
        Lang::Python => {
            let local = dir.join(".venv/bin/componentize-py");
            let tool = if local.is_file() { local } else { PathBuf::from("componentize-py") };
            run_tool(
                std::process::Command::new(&tool)
                    .arg("-d")
                    .arg(&wit)
                    .args(["-w", world, "componentize", "app", "-o"])
                    .arg(&raw)
                    .current_dir(dir),
                "componentize-py",
                "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.txt",
            )?;
        }
        Lang::Js => {
            let tool = dir.join("node_modules/.bin/componentize-js");
            if !tool.is_file() {
                anyhow::bail!("{} is missing; run `npm ci` in {} first", tool.display(), dir.display());
            }
            run_tool(
                std::process::Command::new(&tool)
                    .arg("--wit")
                    .arg(&wit)
                    .args(["--world-name", world, "--disable", "http", "fetch-event", "-o"])
                    .arg(&raw)
                    .arg("app.js")
                    .current_dir(dir),
                "componentize-js",
                "run `npm ci` first",
            )?;
        }
    }
    let bytes = std::fs::read(&raw).with_context(|| format!("reading {}", raw.display()))?;
    let packed = patchbay_registry::pack(&bytes, &text).context("embedding connector.toml")?;
    std::fs::write(&out, &packed).with_context(|| format!("writing {}", out.display()))?;
    let _ = std::fs::remove_file(&raw);
    println!(
        "built {} ({}, {:?}, world {world}) in {:.1} s",
        out.display(),
        human_size(packed.len()),
        lang,
        started.elapsed().as_secs_f64()
    );
    println!("next: patchbay connector check {}", out.display());
    Ok(0)
}
