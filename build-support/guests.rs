//! Shared by the build scripts of `host` (which embeds the reference connectors) and `tests`
//! (which also builds the test guests): building guest workspaces for wasm32-wasip2.
//!
//! The guests are separate cargo workspaces with their own lockfiles. They are built by a nested
//! `cargo build --release --locked` into `<target dir>/wasm-guests`, a directory of its own (the
//! outer cargo holds the lock on its profile directory) that is shared by every guest workspace
//! and by debug, release and clippy runs, so shared dependencies compile once and an unchanged
//! guest is not rebuilt.

#![allow(dead_code)]

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// One guest workspace with its component crates.
pub struct Workspace {
    /// Relative to the repository root, e.g. `connectors-wasm`.
    pub name: &'static str,
    pub dir: PathBuf,
    pub members: Vec<Member>,
}

impl Workspace {
    pub fn open(root: &Path, name: &'static str) -> Self {
        let dir = root.join(name);
        let members = cdylib_members(&dir);
        Workspace { name, dir, members }
    }

    /// Builds the workspace and returns `(crate name, component path)` for each member.
    pub fn build(&self, target_dir: &Path) -> Vec<(String, PathBuf)> {
        build_workspace(&self.dir, target_dir);
        self.members
            .iter()
            .map(|m| {
                let path =
                    target_dir.join(WASM_TARGET).join("release").join(format!("{}.wasm", m.name.replace('-', "_")));
                assert!(path.is_file(), "building {} succeeded but {} is missing", self.name, path.display());
                (m.name.clone(), path)
            })
            .collect()
    }
}

/// The directory nested guest builds write to.
pub fn guests_target_dir(root: &Path) -> PathBuf {
    outer_target_dir(root, &PathBuf::from(env_var("OUT_DIR"))).join("wasm-guests")
}

pub fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// The target directory the outer cargo writes to: the ancestor of `OUT_DIR` that cargo marked
/// with `CACHEDIR.TAG` (this also covers `--target-dir`, which build scripts are not told
/// about), else `CARGO_TARGET_DIR`, else `<root>/target`.
pub fn outer_target_dir(root: &Path, out_dir: &Path) -> PathBuf {
    if let Some(dir) = out_dir.ancestors().skip(1).find(|dir| dir.join("CACHEDIR.TAG").is_file()) {
        return dir.to_path_buf();
    }
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// A guest crate that produces a component.
pub struct Member {
    pub name: String,
    pub dir: PathBuf,
}

/// The `cdylib` crates directly inside a guest workspace, sorted by name.
pub fn cdylib_members(workspace: &Path) -> Vec<Member> {
    let entries = fs::read_dir(workspace).unwrap_or_else(|e| panic!("cannot read {}: {e}", workspace.display()));
    let mut members = Vec::new();
    for entry in entries {
        let dir = entry.expect("read directory entry").path();
        let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if !manifest.contains("cdylib") {
            continue;
        }
        let name = package_name(&manifest).unwrap_or_else(|| panic!("no package name in {}/Cargo.toml", dir.display()));
        members.push(Member { name, dir });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

/// The crates directly inside a guest workspace that are not components (shared libraries).
fn library_dirs(workspace: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(workspace) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|dir| fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|m| !m.contains("cdylib")))
        .collect();
    dirs.sort();
    dirs
}

/// `name` from the `[package]` table of a manifest (enough TOML for our own manifests).
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// Reruns the build script when anything that goes into a component changes: the WIT, the
/// SDK, the guest manifests, lockfiles, sources and connector manifests (not the guests' target
/// directories).
pub fn watch(manifest_dir: &Path, root: &Path, workspaces: &[Workspace]) {
    let mut paths = vec![
        manifest_dir.join("build.rs"),
        root.join("build-support"),
        root.join("Cargo.toml"),
        root.join("rust-toolchain.toml"),
        root.join("wit"),
        root.join("guest-sdk/Cargo.toml"),
        root.join("guest-sdk/src"),
    ];
    for ws in workspaces {
        paths.extend(["Cargo.toml", "Cargo.lock", ".cargo/config.toml"].iter().map(|f| ws.dir.join(f)));
        for member in &ws.members {
            paths.extend(["Cargo.toml", "src", "build.rs", "wit", "connector.toml"].iter().map(|f| member.dir.join(f)));
        }
        // Library crates the components share (e.g. `connectors-wasm/sync-support`).
        for dir in library_dirs(&ws.dir) {
            paths.extend(["Cargo.toml", "src"].iter().map(|f| dir.join(f)));
        }
    }
    // A path that does not exist would make cargo rerun the script every time.
    for path in paths.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Makes sure the active toolchain has the wasm32-wasip2 standard library, installing it with
/// rustup when it is missing (machines with `RUSTUP_AUTO_INSTALL=0` do not do it on their own).
pub fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = &sysroot
        && sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir()
    {
        return;
    }

    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", WASM_TARGET]);
    if let Some(toolchain) = &toolchain {
        rustup.args(["--toolchain", toolchain]);
    }
    let shown = match &toolchain {
        Some(t) => format!("rustup target add {WASM_TARGET} --toolchain {t}"),
        None => format!("rustup target add {WASM_TARGET}"),
    };
    println!("cargo:warning=the {WASM_TARGET} target is not installed for this toolchain; running `{shown}`");
    match rustup.output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!("`{shown}` failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr)),
        Err(e) if e.kind() == ErrorKind::NotFound => println!(
            "cargo:warning=rustup is not available; trying to build the guests anyway \
             (install the {WASM_TARGET} standard library for this toolchain if it fails)"
        ),
        Err(e) => panic!("cannot run `{shown}`: {e}"),
    }
}

/// `cargo build --release --locked --target wasm32-wasip2` in one guest workspace.
pub fn build_workspace(dir: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for (key, _) in env::vars_os() {
        if is_outer_build_setting(&key) {
            command.env_remove(key);
        }
    }

    let output = command.output().unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", dir.display()));
    if output.status.success() {
        return;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("can't find crate for `core`") || stderr.contains("can't find crate for `std`") {
        format!("\nhint: install the target with `rustup target add {WASM_TARGET}`")
    } else if stderr.contains("--locked") {
        format!("\nhint: the guest lockfile is out of date; run `cargo update --workspace` in {}", dir.display())
    } else {
        String::new()
    };
    panic!(
        "building the guest components in {} failed ({}):\n{stderr}{}{hint}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
    );
}

/// Environment the outer build sets for itself that must not leak into the nested one: flags
/// and wrappers (clippy-driver arrives as `RUSTC_WORKSPACE_WRAPPER`, and the guests must be
/// compiled by plain rustc), the outer target/target dir/profile, and the per-package variables
/// cargo gives build scripts. The jobserver (`CARGO_MAKEFLAGS`) is kept on purpose, so the
/// nested build shares the outer build's job limit.
fn is_outer_build_setting(key: &OsStr) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_BUILD_",
        "CARGO_PROFILE_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PKG_",
        "DEP_",
        "CLIPPY_",
        "__CARGO_",
    ];
    let Some(key) = key.to_str() else {
        return false;
    };
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}
