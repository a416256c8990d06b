//! Building the reference connectors written in Python (componentize-py) and JavaScript
//! (componentize-js) for the tests crate's build script.
//!
//! The toolchains are installed from their pinned lockfiles into the target directory — a
//! virtualenv from `connectors-wasm/python/requirements.txt` (hash-checked) and `npm ci` from
//! `connectors-wasm/js/package-lock.json` — so nothing has to be installed by hand beyond
//! `python3` (3.9+) and `node` (18+) with npm. Each connector directory (`python/<name>/` with
//! `app.py`, `js/<name>/` with `app.js`, both with `connector.toml`) becomes `<name>.wasm` with its
//! manifest embedded by `patchbay_registry::pack`. A component whose inputs (sources, manifest,
//! lockfile, WIT) are unchanged is not rebuilt.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One connector written in another language.
pub struct App {
    pub name: String,
    pub dir: PathBuf,
    pub lang: Lang,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    JavaScript,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::JavaScript => "js",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::Python => "app.py",
            Lang::JavaScript => "app.js",
        }
    }

    /// The file that pins the toolchain.
    fn lockfile(self) -> &'static str {
        match self {
            Lang::Python => "requirements.txt",
            Lang::JavaScript => "package-lock.json",
        }
    }
}

/// The connectors under `<connectors>/python/*/` and `<connectors>/js/*/`, sorted by name.
pub fn apps(connectors: &Path) -> Vec<App> {
    let mut apps = Vec::new();
    for lang in [Lang::Python, Lang::JavaScript] {
        let Ok(entries) = fs::read_dir(connectors.join(lang.dir())) else { continue };
        for dir in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if dir.join("connector.toml").is_file() && dir.join(lang.source()).is_file() {
                let name = dir.file_name().and_then(|n| n.to_str()).expect("UTF-8 directory name").to_string();
                apps.push(App { name, dir, lang });
            }
        }
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    apps
}

/// The files whose changes rebuild the components.
pub fn watched(connectors: &Path, apps: &[App]) -> Vec<PathBuf> {
    let mut paths = vec![
        connectors.join("python/requirements.txt"),
        connectors.join("js/package.json"),
        connectors.join("js/package-lock.json"),
    ];
    for app in apps {
        paths.push(app.dir.clone());
    }
    paths
}

fn run(command: &mut Command, what: &str) {
    let shown = format!("{command:?}");
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {what} ({shown}): {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}): {shown}\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn sha256_of_files(files: &[PathBuf]) -> String {
    let mut all = Vec::new();
    for f in files {
        all.extend_from_slice(f.to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&fs::read(f).unwrap_or_default());
        all.push(0);
    }
    patchbay_registry::digest(&all)
}

/// Every file directly in `dir`, sorted (the `.wit` files, a connector's sources).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Installs a toolchain into `dir` unless the stamp says the same lockfile is installed there.
fn ensure_toolchain(connectors: &Path, lang: Lang, dir: &Path) -> PathBuf {
    let lock = connectors.join(lang.dir()).join(lang.lockfile());
    let want = sha256_of_files(&[lock.clone(), connectors.join("js/package.json")]);
    let stamp = dir.join(".installed");
    let tool = match lang {
        Lang::Python => dir.join("bin/componentize-py"),
        Lang::JavaScript => dir.join("node_modules/.bin/componentize-js"),
    };
    if fs::read_to_string(&stamp).is_ok_and(|s| s == want) && tool.exists() {
        return tool;
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("create the toolchain directory");
    match lang {
        Lang::Python => {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
            run(Command::new(&python).args(["-m", "venv"]).arg(dir), "creating a Python virtualenv (python3 -m venv)");
            run(
                Command::new(dir.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "--require-hashes", "-r"])
                    .arg(&lock),
                "installing componentize-py (pip install --require-hashes)",
            );
        }
        Lang::JavaScript => {
            for f in ["package.json", "package-lock.json"] {
                fs::copy(connectors.join("js").join(f), dir.join(f)).expect("copy the npm manifest");
            }
            run(
                Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(dir),
                "installing componentize-js (npm ci)",
            );
        }
    }
    fs::write(&stamp, want).expect("write the toolchain stamp");
    tool
}

/// Builds every connector in `apps` into `out`; returns `(name, component path)` for each.
pub fn build(root: &Path, apps: &[App], work: &Path, out: &Path) -> Vec<(String, PathBuf)> {
    let connectors = root.join("connectors-wasm");
    let wit = root.join("wit");
    fs::create_dir_all(out).expect("create the output directory");
    let mut built = Vec::new();
    for app in apps {
        let manifest_text = fs::read_to_string(app.dir.join("connector.toml")).expect("read connector.toml");
        let manifest = patchbay_registry::Manifest::parse_toml(&manifest_text)
            .unwrap_or_else(|e| panic!("{}/connector.toml: {e}", app.dir.display()));
        let world = manifest.category.world();
        let target = out.join(format!("{}.wasm", app.name));
        let mut inputs = files_in(&app.dir);
        inputs.extend(files_in(&wit));
        inputs.push(connectors.join(app.lang.dir()).join(app.lang.lockfile()));
        let stamp = out.join(format!("{}.inputs", app.name));
        let want = sha256_of_files(&inputs);
        if target.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
            built.push((app.name.clone(), target));
            continue;
        }
        let raw = out.join(format!("{}.raw.wasm", app.name));
        match app.lang {
            Lang::Python => {
                let tool = ensure_toolchain(&connectors, Lang::Python, &work.join("python"));
                // A copy of the sources: the build writes `__pycache__` next to them.
                let src = work.join("src").join(&app.name);
                let _ = fs::remove_dir_all(&src);
                fs::create_dir_all(&src).expect("create the source copy");
                for f in files_in(&app.dir) {
                    fs::copy(&f, src.join(f.file_name().expect("file name"))).expect("copy a source file");
                }
                run(
                    Command::new(tool)
                        .arg("-d")
                        .arg(&wit)
                        .args(["-w", world, "componentize", "app", "-o"])
                        .arg(&raw)
                        .current_dir(&src),
                    &format!("building {} with componentize-py", app.name),
                );
            }
            Lang::JavaScript => {
                let tool = ensure_toolchain(&connectors, Lang::JavaScript, &work.join("js"));
                run(
                    Command::new(tool)
                        .arg("--wit")
                        .arg(&wit)
                        .args(["--world-name", world, "--disable", "http", "fetch-event", "-o"])
                        .arg(&raw)
                        .arg(app.dir.join("app.js")),
                    &format!("building {} with componentize-js", app.name),
                );
            }
        }
        let bytes = fs::read(&raw).expect("read the built component");
        let packed = patchbay_registry::pack(&bytes, &manifest_text)
            .unwrap_or_else(|e| panic!("embedding {}/connector.toml: {e}", app.dir.display()));
        fs::write(&target, packed).expect("write the component");
        let _ = fs::remove_file(&raw);
        fs::write(&stamp, want).expect("write the build stamp");
        built.push((app.name.clone(), target));
    }
    built
}
