//! Tests for `inspect` on hand-assembled binaries and on the reference connectors.

use std::path::PathBuf;

use super::*;
use crate::testutil::{
    MINIMAL_MANIFEST, VALID_MANIFEST, component, component_with_manifest, custom, module, nested_module, section,
};
use crate::{MANIFEST_SECTION, generate_keypair, keypair_from_pkcs8, sign};

fn limits() -> PackageLimits {
    PackageLimits::default()
}

#[test]
fn default_limit_is_32_mib() {
    assert_eq!(PackageLimits::default().max_bytes, 32 * 1024 * 1024);
}

#[test]
fn accepts_a_component_with_a_top_level_manifest() {
    let bytes = component_with_manifest(VALID_MANIFEST);
    let package = inspect(&bytes, &limits()).unwrap();
    assert_eq!(package.manifest.id, "acme-notify");
    assert_eq!(package.size, bytes.len());
    assert_eq!(package.digest, hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)));
    assert_eq!(package.digest.len(), 64);
    assert_eq!(package.signature, None);
}

#[test]
fn finds_the_manifest_inside_a_nested_core_module() {
    let core = module(&[custom("producers-like", b"x"), custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes())]);
    let bytes = component(&[nested_module(&core), custom("other", b"y")]);
    assert_eq!(inspect(&bytes, &limits()).unwrap().manifest.id, "minimal");
}

#[test]
fn size_cap_is_checked_first() {
    let err = inspect(b"definitely not wasm", &PackageLimits { max_bytes: 4 }).unwrap_err();
    assert_eq!(err, PackageError::TooLarge { size: 19, max: 4 });
    assert_eq!(err.code(), "too_large");
    assert_eq!(err.to_string(), "the package is 19 bytes; the limit is 4 bytes");
    let bytes = component_with_manifest(MINIMAL_MANIFEST);
    assert!(inspect(&bytes, &PackageLimits { max_bytes: bytes.len() }).is_ok());
}

#[test]
fn rejects_bytes_that_are_not_wasm() {
    for bytes in [&b""[..], b"\0asm", b"PK\x03\x04 a zip file", b"\0asm\x02\x00\x00\x00"] {
        let err = inspect(bytes, &limits()).unwrap_err();
        assert_eq!(err.code(), "malformed_wasm", "{bytes:?}: {err}");
    }
}

#[test]
fn rejects_a_core_module() {
    let bytes = module(&[custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes())]);
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err, PackageError::NotAComponent);
    assert_eq!(err.code(), "not_a_component");
    assert!(err.to_string().contains("not a component"));
}

#[test]
fn rejects_a_truncated_component_with_its_offset() {
    let mut bytes = component_with_manifest(MINIMAL_MANIFEST);
    bytes.truncate(bytes.len() - 10);
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), "malformed_wasm");
    assert!(err.to_string().starts_with("malformed WebAssembly at byte offset "), "{err}");
}

#[test]
fn rejects_an_invalid_nested_module() {
    // A function section declaring a function of type 0 in a module without types.
    let core = module(&[section(3, &[1, 0])]);
    let bytes = component(&[nested_module(&core), custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes())]);
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), "malformed_wasm");
    assert!(err.to_string().contains("type index out of bounds"), "{err}");
}

#[test]
fn rejects_features_the_host_does_not_enable() {
    // A core module with a shared memory (threads proposal): memory section, 1 memory,
    // flags 0x03 (max + shared), min 1, max 1.
    let core = module(&[section(5, &[1, 0x03, 1, 1])]);
    let bytes = component(&[nested_module(&core), custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes())]);
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), "malformed_wasm");
    assert!(err.to_string().contains("threads"), "{err}");
    assert!(wasm_features().contains(WasmFeatures::COMPONENT_MODEL | WasmFeatures::SIMD | WasmFeatures::MULTI_VALUE));
}

#[test]
fn requires_a_manifest() {
    let err = inspect(&component(&[custom("name", b"")]), &limits()).unwrap_err();
    assert_eq!(err, PackageError::MissingManifest);
    assert_eq!(err.code(), "missing_manifest");
    assert!(err.to_string().contains("patchbay_sdk::manifest!"));
}

#[test]
fn rejects_two_manifests() {
    let core = module(&[custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes())]);
    let bytes = component(&[nested_module(&core), custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes())]);
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err, PackageError::DuplicateManifest { count: 2 });
    assert_eq!(err.code(), "invalid_manifest");
}

#[test]
fn rejects_a_manifest_that_is_not_utf8() {
    let bytes = component(&[custom(MANIFEST_SECTION, b"id = \"\xff\"")]);
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err, PackageError::ManifestNotUtf8 { valid_up_to: 6 });
    assert_eq!(err.code(), "invalid_manifest");
}

#[test]
fn invalid_manifest_message_names_the_problem() {
    let bytes = component_with_manifest(&MINIMAL_MANIFEST.replace("0.1.0", "latest"));
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), "invalid_manifest");
    assert!(err.to_string().starts_with("invalid manifest: version: \"latest\" is not a semantic version"), "{err}");

    let bytes = component_with_manifest(&format!("{MINIMAL_MANIFEST}\nlogo = \"x.png\"\n"));
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), "invalid_manifest");
    assert!(err.to_string().contains("unknown field `logo`"), "{err}");
}

#[test]
fn reports_a_well_formed_signature() {
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    let unsigned = component_with_manifest(MINIMAL_MANIFEST);
    let signed = sign(&unsigned, &pair, &id);
    let package = inspect(&signed, &limits()).unwrap();
    let info = package.signature.unwrap();
    assert_eq!((info.alg.as_str(), &info.key_id, info.signed_len), ("ed25519", &id, unsigned.len()));
    assert_ne!(package.digest, digest(&unsigned));
}

#[test]
fn rejects_a_misplaced_signature() {
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    let mut bytes = sign(&component(&[]), &pair, &id);
    bytes.extend_from_slice(&custom(MANIFEST_SECTION, MINIMAL_MANIFEST.as_bytes()));
    let err = inspect(&bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    assert!(err.to_string().contains("must be the last section"), "{err}");
}

/// Directory holding `notify_webhook.wasm` and `github.wasm`, from `PATCHBAY_TEST_COMPONENTS_DIR`.
fn components_dir() -> Option<PathBuf> {
    std::env::var_os("PATCHBAY_TEST_COMPONENTS_DIR").map(PathBuf::from)
}

fn read_component(dir: &std::path::Path, file: &str) -> Vec<u8> {
    let path = dir.join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nbuild the reference connectors first: \
             (cd connectors-wasm && CARGO_TARGET_DIR=<dir>/../.. cargo build --release --target wasm32-wasip2), \
             then point PATCHBAY_TEST_COMPONENTS_DIR at <target dir>/wasm32-wasip2/release",
            path.display()
        )
    })
}

/// Names of the custom sections at nesting `depth` (1 = top level).
fn custom_sections_at_depth(bytes: &[u8], depth: usize) -> Vec<String> {
    let mut current = 0;
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            wasmparser::Payload::Version { .. } => current += 1,
            wasmparser::Payload::End(_) => current -= 1,
            wasmparser::Payload::CustomSection(c) if current == depth => names.push(c.name().to_string()),
            _ => {}
        }
    }
    names
}

/// The reference connectors, as rustc and wasm-component-ld build them, carry their manifest
/// (which lands in the nested core module) and pass validation with the host's feature set.
/// Runs when `PATCHBAY_TEST_COMPONENTS_DIR` names their build directory.
#[test]
fn reference_connectors_pass_inspection() {
    let Some(dir) = components_dir() else {
        eprintln!("skipped: set PATCHBAY_TEST_COMPONENTS_DIR to <target>/wasm32-wasip2/release of connectors-wasm");
        return;
    };
    let notify = read_component(&dir, "notify_webhook.wasm");
    let package = inspect(&notify, &limits()).unwrap();
    assert_eq!(package.manifest.id, "notify-webhook");
    assert_eq!(package.manifest.category, crate::Category::NotificationProvider);
    assert_eq!(package.manifest.allowed_hosts, ["{{config.webhook_url}}"]);
    assert_eq!(package.manifest.config_field("webhook_url").map(|f| f.required), Some(true));

    let github = read_component(&dir, "github.wasm");
    let package = inspect(&github, &limits()).unwrap();
    assert_eq!(package.manifest.id, "github");
    assert_eq!(package.manifest.category, crate::Category::WebhookEndpoint);
    assert_eq!(package.manifest.webhook.and_then(|w| w.header), Some("X-Hub-Signature-256".to_string()));

    // Both keep the manifest inside a nested core module, not at the top level.
    for bytes in [&notify, &github] {
        assert_eq!(crate::sections::scan(bytes).unwrap().manifests.len(), 1);
        assert!(!custom_sections_at_depth(bytes, 1).iter().any(|n| n == MANIFEST_SECTION));
        assert!(custom_sections_at_depth(bytes, 2).iter().any(|n| n == MANIFEST_SECTION));
    }

    // A signed reference connector still passes, and its signature verifies.
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    let signed = sign(&github, &pair, &id);
    assert_eq!(inspect(&signed, &limits()).unwrap().signature.map(|s| s.key_id), Some(id.clone()));
    let trusted = crate::TrustedKeys::parse(&key.trusted_entry()).unwrap();
    assert_eq!(crate::verify(&signed, &trusted), Ok(Some(id)));
}
