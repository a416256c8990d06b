//! Hand-assembled WebAssembly binaries and manifests for the unit tests (an encoder of its own,
//! independent of the one `sign` uses).

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { byte } else { byte | 0x80 });
        if n == 0 {
            return;
        }
    }
}

/// Header of a component (version 0x0d, layer 1).
pub(crate) const COMPONENT_HEADER: [u8; 8] = *b"\0asm\x0d\x00\x01\x00";
/// Header of a core module (version 1, layer 0).
pub(crate) const MODULE_HEADER: [u8; 8] = *b"\0asm\x01\x00\x00\x00";

/// A custom section.
pub(crate) fn custom(name: &str, data: &[u8]) -> Vec<u8> {
    let mut contents = Vec::new();
    leb128(&mut contents, name.len());
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(data);
    section(0, &contents)
}

/// A section with the given id and contents.
pub(crate) fn section(id: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    leb128(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

/// A component made of these sections.
pub(crate) fn component(sections: &[Vec<u8>]) -> Vec<u8> {
    let mut out = COMPONENT_HEADER.to_vec();
    sections.iter().for_each(|s| out.extend_from_slice(s));
    out
}

/// A core module made of these sections.
pub(crate) fn module(sections: &[Vec<u8>]) -> Vec<u8> {
    let mut out = MODULE_HEADER.to_vec();
    sections.iter().for_each(|s| out.extend_from_slice(s));
    out
}

/// A component's core-module section (id 1) embedding `module`.
pub(crate) fn nested_module(module: &[u8]) -> Vec<u8> {
    section(1, module)
}

/// A valid manifest using most features.
pub(crate) const VALID_MANIFEST: &str = r#"
id = "acme-notify"
title = "Acme Notify"
description = "Sends notifications through Acme."
category = "notification-provider"
provider = "Acme Inc."
version = "1.2.3"
allowed_hosts = ["https://api.acme.example", "{{config.base_url}}"]

[[api_versions]]
id = "v2"
label = "Version 2"
status = "stable"
default = true

[[api_versions]]
id = "v1"
label = "Version 1"
status = "deprecated"
sunset = 2026-06-30

[[credentials]]
key = "token"
label = "API token"
type = "secret"
required = true

[[config]]
key = "base_url"
label = "Base URL"
type = "url"
default = "https://eu.acme.example"

[webhook]
scheme = "hmac-sha256"
header = "X-Acme-Signature"
secret = "token"
encoding = "hex"
"#;

/// The smallest valid manifest.
pub(crate) const MINIMAL_MANIFEST: &str = r#"
id = "minimal"
title = "Minimal"
description = "Does nothing."
category = "data-sync"
provider = "Nobody"
version = "0.1.0"
"#;

/// A component whose only section is the manifest `text`.
pub(crate) fn component_with_manifest(text: &str) -> Vec<u8> {
    component(&[custom(crate::MANIFEST_SECTION, text.as_bytes())])
}
