//! The author commands of the real binary, offline: `patchbay wit`, `connector pack` and
//! `connector check`, and the WIT the API serves.

use std::path::Path;
use std::process::{Command, Output};

use patchbay_store::Backend;
use patchbay_tests::{components, patchbay_bin};
use reqwest::StatusCode;

use crate::server::Server;

/// Runs the binary with its own compile cache; returns (exit code, stdout + stderr).
fn patchbay(args: &[&str], cache: &Path) -> (i32, String) {
    let Output { status, stdout, stderr } =
        Command::new(patchbay_bin()).args(args).env("PATCHBAY_CACHE_DIR", cache).output().expect("run patchbay");
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    (status.code().unwrap_or(-1), text)
}

const PACKED_MANIFEST: &str = r#"
id = "packed-notify"
title = "Packed notify"
description = "The reference webhook notifier under another manifest."
category = "notification-provider"
provider = "Tests"
version = "9.9.9"
allowed_hosts = ["{{config.webhook_url}}"]

[[config]]
key = "webhook_url"
label = "Webhook URL"
type = "url"
required = true
"#;

/// `patchbay connector pack` of the notify-webhook reference connector under `manifest` into
/// `<dir>/<name>.wasm`; returns the file and its bytes.
fn pack_notify(dir: &Path, manifest: &str, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let m = dir.join(format!("{name}.toml"));
    std::fs::write(&m, manifest).unwrap();
    let out = dir.join(format!("{name}.wasm"));
    let args = [
        "connector",
        "pack",
        components::NOTIFY_WEBHOOK,
        "--manifest",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, text) = patchbay(&args, dir);
    assert_eq!(code, 0, "{text}");
    let bytes = std::fs::read(&out).unwrap();
    (out, bytes)
}

#[tokio::test]
async fn wit_is_written_and_served_as_the_host_provides_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wit");
    let (code, text) = patchbay(&["wit", out.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("patchbay:connector@0.1.0: 5 files"), "{text}");
    let repo_wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    for f in patchbay_registry::wit::FILES {
        let written = std::fs::read_to_string(out.join(f.name)).unwrap();
        assert_eq!(written, std::fs::read_to_string(repo_wit.join(f.name)).unwrap(), "{}", f.name);
    }

    let server = Server::start(Backend::Sqlite).await;
    // Public: an author without a key can fetch it too.
    let r = server.get("/v1/wit", "").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["package"], "patchbay:connector");
    assert_eq!(r.body["version"], "0.1.0");
    let files = r.body["files"].as_array().unwrap();
    assert_eq!(files.len(), patchbay_registry::wit::FILES.len());
    for (served, f) in files.iter().zip(patchbay_registry::wit::FILES) {
        assert_eq!(served["name"], f.name);
        assert_eq!(served["text"], f.text);
    }
}

#[tokio::test]
async fn a_packed_component_checks_and_uploads_under_its_new_manifest() {
    let dir = tempfile::tempdir().unwrap();
    // The reference connector carries its manifest inside its core module: pack replaces it.
    let (out, packed) = pack_notify(dir.path(), PACKED_MANIFEST, "packed");
    let package = patchbay_registry::inspect(&packed, &Default::default()).unwrap();
    assert_eq!((package.manifest.id.as_str(), package.manifest.version.as_str()), ("packed-notify", "9.9.9"));

    let (code, text) = patchbay(&["connector", "check", out.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{text}");
    for want in [
        "✓ manifest: packed-notify 9.9.9",
        "✓ links against the host's imports (world notification-provider",
        "compiled now",
        "    lifecycle.health-check",
        "    notifications.send",
        "    notifications.get-status",
        "patchbay:connector/http@0.1.0",
        "ok: the host accepts this component",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // A second check reads the compile cache instead of compiling again.
    let (code, text) = patchbay(&["connector", "check", out.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("from the compile cache"), "{text}");

    let server = Server::start(Backend::Sqlite).await;
    let r = server.upload(&server.operator, packed).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["connector"], "packed-notify");
}

#[test]
fn check_names_each_problem_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    // No manifest, and an interface of its own besides the operations.
    let (code, text) = patchbay(&["connector", "check", components::KINDS], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("✗ the component has no `patchbay:manifest` custom section"), "{text}");
    assert!(text.contains("hint: write connector.toml"), "{text}");
    assert!(text.contains("patchbay connector pack FILE.wasm --manifest connector.toml"), "{text}");
    assert!(text.contains("other exports (not operations: never listed or callable): kinds.echo-scalars"), "{text}");
    assert!(!text.contains("    kinds.echo-scalars"), "{text}");

    // wasi:http, as a default componentize-js build imports it (the names are what check reads).
    let mut section = vec![1u8];
    let name = b"wasi:http/types@0.2.6";
    section.extend([0x00, name.len() as u8]);
    section.extend_from_slice(name);
    section.extend([0x05, 0x00]);
    let mut http = b"\0asm\x0d\x00\x01\x00".to_vec();
    http.extend([10, section.len() as u8]);
    http.extend(section);
    std::fs::write(path("http.wasm"), &http).unwrap();
    let (code, text) = patchbay(&["connector", "check", &path("http.wasm")], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("✗ imports wasi:http/types@0.2.6, which the host does not provide"), "{text}");
    assert!(text.contains("--disable http fetch-event"), "{text}");

    // Not WebAssembly at all; a missing file.
    std::fs::write(path("text.wasm"), "hello").unwrap();
    let (code, text) = patchbay(&["connector", "check", &path("text.wasm")], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("malformed WebAssembly"), "{text}");
    let (code, text) = patchbay(&["connector", "check", &path("missing.wasm")], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("reading"), "{text}");
}

#[test]
fn pack_refuses_bad_manifests_and_signed_components() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("bad.toml"), "id = \"Not Valid\"\n").unwrap();
    let before = std::fs::read(components::TRIVIAL).unwrap();
    std::fs::write(path("trivial.wasm"), &before).unwrap();
    let (code, text) =
        patchbay(&["connector", "pack", &path("trivial.wasm"), "--manifest", &path("bad.toml")], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("id"), "{text}");
    assert_eq!(std::fs::read(path("trivial.wasm")).unwrap(), before, "nothing is written on a refusal");

    std::fs::write(path("ok.toml"), PACKED_MANIFEST).unwrap();
    let (code, text) = patchbay(&["connector", "keygen", "--out", &path("key.pem")], dir.path());
    assert_eq!(code, 0, "{text}");
    let (code, text) = patchbay(&["connector", "sign", &path("trivial.wasm"), "--key", &path("key.pem")], dir.path());
    assert_eq!(code, 0, "{text}");
    let (code, text) =
        patchbay(&["connector", "pack", &path("trivial.wasm"), "--manifest", &path("ok.toml")], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("the component is signed"), "{text}");
}

/// An upload answers within the upload wait; a compile that outlasts it ends in the background.
/// With no wait at all, even a small component is stored `compiling` and settles: `ready`, or
/// `failed` with the reason when it does not implement its manifest's world — a failed version
/// refuses calls clearly and a new upload of the same version replaces it. A compile whose host
/// stopped is taken over by the next host that starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_settle_in_the_background() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_UPLOAD_WAIT_MS", "0")]).await;
    let acme = s.tenant("acme").await;
    let wrong = PACKED_MANIFEST.replace("notification-provider", "payment-gateway").replace("packed-notify", "wrong");
    let dir = tempfile::tempdir().unwrap();
    let pack = |manifest: &str, name: &str| pack_notify(dir.path(), manifest, name).1;

    // The world does not match the manifest: stored, then failed with the reason.
    let r = s.upload(&acme, pack(&wrong, "wrong")).await;
    assert_eq!((r.status, r.body["state"].as_str()), (StatusCode::ACCEPTED, Some("compiling")), "{r:?}");
    let v = crate::polyglot::wait_compiled(&s, &acme, "wrong", "9.9.9").await;
    assert_eq!(v["state"], "failed", "{v}");
    assert!(v["state_message"].as_str().unwrap().contains("payment-gateway"), "{v}");
    let r = s.post("/v1/installations", &acme, serde_json::json!({ "connector": "wrong", "name": "w", "config": { "webhook_url": "https://hooks.example/x" } })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let inst = r.body["id"].as_str().unwrap().to_string();
    let r = s.post(&format!("/v1/installations/{inst}/invoke/health-check"), &acme, serde_json::json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "version_failed"), "{r:?}");
    assert!(r.message().contains("failed to compile") && r.message().contains("payment-gateway"), "{r:?}");

    // A fixed build of the same version replaces the failed one; the installation runs then.
    let fixed = PACKED_MANIFEST.replace("packed-notify", "wrong");
    let r = s.upload(&acme, pack(&fixed, "fixed")).await;
    assert!(r.status == StatusCode::ACCEPTED || r.status == StatusCode::CREATED, "{r:?}");
    let v = crate::polyglot::wait_compiled(&s, &acme, "wrong", "9.9.9").await;
    assert_eq!(v["state"], "ready", "{v}");
    assert!(v.get("state_message").is_none(), "{v}");
    let r = s.post(&format!("/v1/installations/{inst}/invoke/health-check"), &acme, serde_json::json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // A ready version stays immutable.
    let r = s.upload(&acme, pack(&wrong, "wrong-again")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");

    // A compile left `compiling` by a host that stopped is resumed by the next one.
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", s.data_dir().join("patchbay.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let long_ago = patchbay_core::clock::now_ms() - 3_600_000;
    sqlx::query(&format!(
        "UPDATE connector_versions SET state = 'compiling', state_at = {long_ago} WHERE connector_id = 'wrong'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let s = s.restart().await;
    let v = crate::polyglot::wait_compiled(&s, &acme, "wrong", "9.9.9").await;
    assert_eq!(v["state"], "ready", "{v}");
}

/// From nothing to a component the host accepts, in each language: `connector new` scaffolds a
/// project whose every operation answers `unsupported`, `connector build` builds it with the
/// language's toolchain and embeds the manifest, `check` accepts it and `run` calls it. (The
/// toolchains are the ones the build script installed from the repo's pins.)
#[test]
fn new_projects_build_check_and_run_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for (lang, world) in [("rust", "data-sync"), ("python", "notification-provider"), ("js", "payment-gateway")] {
        let name = format!("demo-{lang}");
        let project = dir.path().join(&name);
        let started = std::time::Instant::now();
        let (code, text) = patchbay(
            &["connector", "new", &name, "--world", world, "--lang", lang, "--dir", project.to_str().unwrap()],
            &cache,
        );
        assert_eq!(code, 0, "{text}");
        assert!(project.join("connector.toml").is_file() && project.join("wit/worlds.wit").is_file(), "{text}");
        match lang {
            "python" => std::os::unix::fs::symlink(components::PYTHON_TOOLCHAIN, project.join(".venv")).unwrap(),
            "js" => std::os::unix::fs::symlink(
                Path::new(components::JS_TOOLCHAIN).join("node_modules"),
                project.join("node_modules"),
            )
            .unwrap(),
            _ => {}
        }
        let out = Command::new(patchbay_bin())
            .args(["connector", "build"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", components::GUESTS_TARGET_DIR)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{lang}: {text}");
        let wasm = project.join(format!("{name}.wasm"));
        let (code, text) = patchbay(&["connector", "check", wasm.to_str().unwrap()], &cache);
        assert_eq!(code, 0, "{lang}: {text}");
        assert!(text.contains(&format!("world {world}")), "{lang}: {text}");
        let (code, text) = patchbay(&["run", wasm.to_str().unwrap(), "health-check"], &cache);
        assert_eq!(code, 2, "{lang}: the stub answers its own error: {text}");
        assert!(text.contains("unsupported") && text.contains("health-check is not implemented yet"), "{lang}: {text}");
        eprintln!("{lang}: new → build → check → run in {:.1} s", started.elapsed().as_secs_f64());
    }
    // A name that cannot be an id, a world that does not exist, a directory in use.
    let (code, text) = patchbay(&["connector", "new", "Bad Name", "--world", "data-sync", "--lang", "rust"], &cache);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot be a connector id"), "{text}");
    let (code, text) = patchbay(&["connector", "new", "x-y", "--world", "payments", "--lang", "rust"], &cache);
    assert_eq!(code, 1, "{text}");
    let busy = dir.path().join("demo-rust");
    let (code, text) = patchbay(
        &["connector", "new", "again", "--world", "data-sync", "--lang", "js", "--dir", busy.to_str().unwrap()],
        &cache,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not empty"), "{text}");
}

/// `patchbay run --fixtures`: the call's requests are answered from recorded exchanges, never
/// from the network, and the log says so.
#[test]
fn run_answers_from_fixtures_in_test_mode() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures.json");
    std::fs::write(
        &fixtures,
        r#"[{"name": "accepted", "request": {"method": "POST", "url": "https://hooks.example/services/T1",
             "body_json": {"text": "*Deploy*\nv1.2 is live"}},
            "response": {"status": 200, "body": "ok"}}]"#,
    )
    .unwrap();
    let input = r##"{"notification": {"to": [{"address": "#deploys"}], "cc": [], "bcc": [], "subject": "Deploy",
        "text": "v1.2 is live", "attachments": [], "categories": [], "metadata": [], "idempotency-key": "k-1"}}"##;
    let run = |url: &str| {
        patchbay(
            &[
                "run",
                components::NOTIFY_WEBHOOK,
                "send",
                "--input",
                input,
                "--config",
                &format!("webhook_url={url}"),
                "--allow-host",
                "https://hooks.example",
                "--fixtures",
                fixtures.to_str().unwrap(),
            ],
            dir.path(),
        )
    };
    let (code, text) = run("https://hooks.example/services/T1");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("-> 200 (fixture accepted)") && text.contains("\"ok\""), "{text}");
    // Another path matches no fixture: the connector sees a connection failure, nothing goes out.
    let (code, text) = run("https://hooks.example/services/T2");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no fixture matches POST hooks.example/services/T2"), "{text}");
    // A malformed fixtures file is refused before anything runs.
    std::fs::write(&fixtures, r#"[{"request": {"method": "POST"}}]"#).unwrap();
    let (code, text) = run("https://hooks.example/services/T1");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("fixtures"), "{text}");
}
