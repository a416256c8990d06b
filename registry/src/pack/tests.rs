//! Tests for `pack` on hand-assembled binaries.

use super::*;
use crate::testutil::{
    MINIMAL_MANIFEST, VALID_MANIFEST, component, component_with_manifest, custom, module, nested_module, section,
};
use crate::{PackageLimits, generate_keypair, inspect, keypair_from_pkcs8, sign};

fn manifests(bytes: &[u8]) -> Vec<String> {
    sections::scan(bytes).unwrap().manifests.iter().map(|m| String::from_utf8(m.to_vec()).unwrap()).collect()
}

#[test]
fn embeds_a_manifest_into_a_component_without_one() {
    let bytes = component(&[custom("producers", b"x"), section(7, b"\x00")]);
    let packed = pack(&bytes, MINIMAL_MANIFEST).unwrap();
    assert_eq!(manifests(&packed), [MINIMAL_MANIFEST]);
    assert!(packed.starts_with(&bytes), "everything else is kept as it was");
    assert_eq!(inspect(&packed, &PackageLimits::default()).unwrap().manifest.id, "minimal");
}

#[test]
fn replaces_manifests_at_any_depth_and_fixes_the_sizes_around_them() {
    // A manifest in a core module inside a nested component inside the component, and one at
    // the top level: both go, the sizes of the sections that held them shrink.
    let core = module(&[custom(MANIFEST_SECTION, VALID_MANIFEST.as_bytes()), custom("name", b"keep me")]);
    let inner = component(&[nested_module(&core)]);
    let bytes = component(&[
        section(4, &inner),
        custom(MANIFEST_SECTION, b"id = \"old\""),
        nested_module(&module(&[custom("other", b"y")])),
    ]);
    let packed = pack(&bytes, MINIMAL_MANIFEST).unwrap();
    assert_eq!(manifests(&packed), [MINIMAL_MANIFEST]);
    // Walking the result with wasmparser finds every other section intact.
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&packed) {
        if let wasmparser::Payload::CustomSection(c) = payload.unwrap() {
            names.push(c.name().to_string());
        }
    }
    assert_eq!(names, ["name", "other", MANIFEST_SECTION]);
    // Packing again replaces, never adds.
    let again = pack(&packed, VALID_MANIFEST).unwrap();
    assert_eq!(manifests(&again), [VALID_MANIFEST]);
    assert_eq!(inspect(&again, &PackageLimits::default()).unwrap().manifest.id, "acme-notify");
}

#[test]
fn refuses_what_it_cannot_pack_with_a_reason() {
    let err = pack(&component(&[]), "id = \"x\"").unwrap_err();
    assert!(matches!(err, PackError::InvalidManifest(_)), "{err}");
    assert!(err.to_string().contains("title"), "{err}");

    let err = pack(&module(&[]), MINIMAL_MANIFEST).unwrap_err();
    assert!(matches!(err, PackError::NotAComponent), "{err}");
    assert!(err.to_string().contains("componentize-py"), "{err}");

    let err = pack(b"not wasm at all", MINIMAL_MANIFEST).unwrap_err();
    assert!(matches!(err, PackError::MalformedWasm { offset: 0, .. }), "{err}");

    // A section that claims more bytes than there are.
    let mut truncated = component_with_manifest(MINIMAL_MANIFEST);
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(pack(&truncated, MINIMAL_MANIFEST).unwrap_err(), PackError::MalformedWasm { .. }));

    // Signed: the signature covers the old manifest.
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    let signed = sign(&component_with_manifest(VALID_MANIFEST), &pair, &id);
    let err = pack(&signed, MINIMAL_MANIFEST).unwrap_err();
    assert!(matches!(err, PackError::Signed), "{err}");
    assert!(err.to_string().contains("patchbay connector sign"), "{err}");
}

#[test]
fn a_packed_component_can_be_signed() {
    let packed = pack(&component(&[]), MINIMAL_MANIFEST).unwrap();
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    let signed = sign(&packed, &pair, &id);
    let package = inspect(&signed, &PackageLimits::default()).unwrap();
    assert_eq!(package.manifest.id, "minimal");
    assert_eq!(package.signature.map(|s| s.key_id), Some(id));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut bytes = component(&[]);
    for _ in 0..100 {
        bytes = component(&[section(4, &bytes)]);
    }
    let err = pack(&bytes, MINIMAL_MANIFEST).unwrap_err();
    assert!(matches!(err, PackError::MalformedWasm { .. }), "{err}");
}
