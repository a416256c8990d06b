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
    let manifest = dir.path().join("connector.toml");
    std::fs::write(&manifest, PACKED_MANIFEST).unwrap();
    let out = dir.path().join("packed.wasm");
    // The reference connector carries its manifest inside its core module: pack replaces it.
    let (code, text) = patchbay(
        &[
            "connector",
            "pack",
            components::NOTIFY_WEBHOOK,
            "--manifest",
            manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{text}");
    let packed = std::fs::read(&out).unwrap();
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
