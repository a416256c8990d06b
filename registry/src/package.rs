//! Inspecting an uploaded connector package: size cap, component check, WebAssembly validation,
//! manifest extraction and signature form, plus the content digest.

use ring::digest::{SHA256, digest as sha256};
use serde::Serialize;
use wasmparser::{Validator, WasmFeatures};

use crate::manifest::{Manifest, ManifestError};
use crate::sections;
use crate::signature::{self, SignatureError, SignatureInfo};

/// Default [`PackageLimits::max_bytes`]: 32 MiB.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Limits applied by [`inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Largest accepted package, in bytes.
    pub max_bytes: usize,
}

impl Default for PackageLimits {
    fn default() -> Self {
        PackageLimits { max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// An accepted package: well-formed component with a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub manifest: Manifest,
    /// SHA-256 of all the bytes (signature section included), lowercase hex.
    pub digest: String,
    /// Size in bytes.
    pub size: usize,
    /// The signature section, well-formed and last, but not yet verified (see
    /// [`verify`](crate::verify)).
    pub signature: Option<SignatureInfo>,
}

/// Why [`inspect`] rejected a package. [`PackageError::code`] is a stable machine-readable code;
/// `Display` is the message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("the package is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// Not WebAssembly, or WebAssembly that does not validate.
    #[error("malformed WebAssembly at byte offset {offset}: {message}")]
    MalformedWasm { offset: usize, message: String },
    /// A core module (or another layer) where a component was expected.
    #[error(
        "this is a core WebAssembly module, not a component; build for the wasm32-wasip2 target or wrap the module with `wasm-tools component new`"
    )]
    NotAComponent,
    #[error(
        "the component has no `patchbay:manifest` custom section; embed connector.toml with `patchbay connector pack FILE.wasm --manifest connector.toml` (any language), or in Rust with `patchbay_sdk::manifest!(\"connector.toml\");`"
    )]
    MissingManifest,
    #[error("the component has {count} `patchbay:manifest` custom sections; exactly one is allowed")]
    DuplicateManifest { count: usize },
    #[error("the `patchbay:manifest` section is not UTF-8 text (invalid byte at offset {valid_up_to} of the section)")]
    ManifestNotUtf8 { valid_up_to: usize },
    #[error(transparent)]
    InvalidManifest(#[from] ManifestError),
    #[error(transparent)]
    BadSignature(#[from] SignatureError),
}

impl PackageError {
    /// `too_large`, `malformed_wasm`, `not_a_component`, `missing_manifest`, `invalid_manifest`
    /// or `bad_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            PackageError::TooLarge { .. } => "too_large",
            PackageError::MalformedWasm { .. } => "malformed_wasm",
            PackageError::NotAComponent => "not_a_component",
            PackageError::MissingManifest => "missing_manifest",
            PackageError::DuplicateManifest { .. }
            | PackageError::ManifestNotUtf8 { .. }
            | PackageError::InvalidManifest(_) => "invalid_manifest",
            PackageError::BadSignature(_) => "bad_signature",
        }
    }
}

impl From<wasmparser::BinaryReaderError> for PackageError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        PackageError::MalformedWasm { offset: e.offset(), message: e.message().to_string() }
    }
}

/// The WebAssembly features the host's engine accepts: Wasmtime 48's defaults (the WebAssembly
/// 3.0 set plus the component model) without the proposals the host's build leaves out (GC
/// types, exceptions, threads, component-model async).
pub fn wasm_features() -> WasmFeatures {
    let mut features = WasmFeatures::WASM3 | WasmFeatures::COMPONENT_MODEL;
    features.remove(WasmFeatures::GC_TYPES | WasmFeatures::EXCEPTIONS | WasmFeatures::THREADS | WasmFeatures::CM_ASYNC);
    features
}

/// SHA-256 of `bytes`, lowercase hex: the content address of a package.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(sha256(&SHA256, bytes))
}

/// Layer of a WebAssembly binary, from its 8-byte header.
enum Header {
    Component,
    CoreModule,
}

fn header(bytes: &[u8]) -> Result<Header, PackageError> {
    let malformed = |message: &str| PackageError::MalformedWasm { offset: 0, message: message.to_string() };
    let Some(head) = bytes.get(..8) else {
        return Err(malformed("too short for a WebAssembly header (8 bytes)"));
    };
    if head[..4] != *b"\0asm" {
        return Err(malformed("not a WebAssembly binary (missing the \\0asm magic number)"));
    }
    match (&head[4..6], &head[6..8]) {
        ([1, 0], [0, 0]) => Ok(Header::CoreModule),
        (_, [1, 0]) => Ok(Header::Component),
        _ => Err(malformed("unknown WebAssembly version or layer")),
    }
}

/// Checks an uploaded package, in this order: size cap, component (not core module),
/// validation with [`wasm_features`], exactly one UTF-8 `patchbay:manifest` section (anywhere,
/// including nested core modules) that parses and validates, and a well-formed trailing
/// `patchbay:signature` section if there is one.
///
/// Whether the component implements its category's world is for the host to check, by linking
/// it against the host's imports.
pub fn inspect(bytes: &[u8], limits: &PackageLimits) -> Result<Package, PackageError> {
    if bytes.len() > limits.max_bytes {
        return Err(PackageError::TooLarge { size: bytes.len(), max: limits.max_bytes });
    }
    if let Header::CoreModule = header(bytes)? {
        return Err(PackageError::NotAComponent);
    }
    Validator::new_with_features(wasm_features()).validate_all(bytes)?;
    let found = sections::scan(bytes)?;
    let data = match found.manifests.as_slice() {
        [] => return Err(PackageError::MissingManifest),
        [one] => *one,
        many => return Err(PackageError::DuplicateManifest { count: many.len() }),
    };
    let text = std::str::from_utf8(data).map_err(|e| PackageError::ManifestNotUtf8 { valid_up_to: e.valid_up_to() })?;
    let manifest = Manifest::parse_toml(text)?;
    let signature = signature::info(&found.signatures, bytes.len())?;
    Ok(Package { manifest, digest: digest(bytes), size: bytes.len(), signature })
}

#[cfg(test)]
mod tests;
