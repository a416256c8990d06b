//! Embedding a manifest into any component, whatever toolchain built it: [`pack`] removes every
//! `patchbay:manifest` section (at any nesting depth, fixing the sizes of the sections around it)
//! and appends the new manifest as a top-level custom section.
//!
//! A signed component is refused: its signature covers the old manifest, so packing would
//! invalidate it. Pack the unsigned component, then sign the result.

use crate::signature::{custom_section, leb128};
use crate::{MANIFEST_SECTION, Manifest, ManifestError, sections};

/// Why a manifest could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The manifest text does not parse or validate.
    #[error(transparent)]
    InvalidManifest(#[from] ManifestError),
    /// The input is not a WebAssembly binary this can walk.
    #[error("malformed WebAssembly at byte offset {offset}: {message}")]
    MalformedWasm {
        /// Where the problem is.
        offset: usize,
        /// What it is.
        message: String,
    },
    /// A core module where a component was expected.
    #[error(
        "this is a core WebAssembly module, not a component; build for wasm32-wasip2 (Rust), with componentize-py \
         (Python) or componentize-js (JavaScript), or wrap the module with `wasm-tools component new`"
    )]
    NotAComponent,
    /// The component carries a publisher signature.
    #[error(
        "the component is signed, and a new manifest would invalidate its signature; pack the unsigned component, \
         then sign the result with `patchbay connector sign`"
    )]
    Signed,
}

const MAGIC: &[u8; 4] = b"\0asm";
/// Section ids (in a component) that hold a whole nested binary: a core module, a component.
const NESTED_MODULE: u8 = 1;
const NESTED_COMPONENT: u8 = 4;
/// The version/layer field of a component binary (a core module's is `01 00 00 00`).
const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// `bytes` with its manifest replaced by `manifest` (TOML text, validated first): every existing
/// `patchbay:manifest` section is removed and the new one is appended at the top level.
pub fn pack(bytes: &[u8], manifest: &str) -> Result<Vec<u8>, PackError> {
    Manifest::parse_toml(manifest)?;
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PackError::MalformedWasm {
            offset: 0,
            message: "not a WebAssembly binary (no \\0asm header)".into(),
        });
    }
    if bytes[4..8] != COMPONENT_LAYER {
        return Err(PackError::NotAComponent);
    }
    let found = sections::scan(bytes)
        .map_err(|e| PackError::MalformedWasm { offset: e.offset(), message: e.message().to_string() })?;
    if !found.signatures.is_empty() {
        return Err(PackError::Signed);
    }
    let mut out = strip(bytes, 0, 0)?;
    out.extend_from_slice(&custom_section(MANIFEST_SECTION, manifest.as_bytes()));
    Ok(out)
}

/// Nesting deeper than this is refused (components nest a handful of levels in practice).
const MAX_DEPTH: usize = 64;

/// A copy of the binary `bytes` (which starts at `base` in the whole file, for error offsets)
/// without its manifest sections, recursing into nested modules and components.
fn strip(bytes: &[u8], base: usize, depth: usize) -> Result<Vec<u8>, PackError> {
    let malformed = |at: usize, message: &str| PackError::MalformedWasm { offset: base + at, message: message.into() };
    if depth > MAX_DEPTH {
        return Err(malformed(0, "components nested too deeply"));
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(malformed(0, "a nested binary has no \\0asm header"));
    }
    let is_component = bytes[4..8] == COMPONENT_LAYER;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..8]);
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        let (size, len) = read_u32(&bytes[at + 1..]).ok_or_else(|| malformed(at + 1, "bad section size"))?;
        let start = at + 1 + len;
        let end = start.checked_add(size as usize).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| malformed(at, "section runs past the end"))?;
        let content = &bytes[start..end];
        if id == 0 && custom_name(content) == Some(MANIFEST_SECTION) {
            // Dropped.
        } else if is_component && (id == NESTED_MODULE || id == NESTED_COMPONENT) {
            let inner = strip(content, base + start, depth + 1)?;
            out.push(id);
            leb128(&mut out, inner.len());
            out.extend_from_slice(&inner);
        } else {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
    Ok(out)
}

/// The name of a custom section from its contents.
fn custom_name(content: &[u8]) -> Option<&str> {
    let (len, n) = read_u32(content)?;
    let name = content.get(n..n.checked_add(len as usize)?)?;
    std::str::from_utf8(name).ok()
}

/// An unsigned LEB128 u32 and how many bytes it took.
fn read_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests;
