//! Embedding the connector manifest (`connector.toml`) into the component with [`manifest!`].
//!
//! The host reads the manifest from a custom section named `patchbay:manifest` when a component
//! is uploaded; it holds the manifest's TOML text unchanged. `manifest!` puts the file's bytes
//! into a `#[used]` static placed in that section. `#[used]` keeps the otherwise unreferenced
//! static through LTO; `wasm-ld` turns a `link_section` static into a custom section of the core
//! module (also under `strip = true`, which only drops symbol names and debug info); and
//! `wasm-component-ld` keeps the core module's custom sections when it wraps the module into the
//! component. The section therefore ends up inside the component's main nested core module,
//! where the host looks for it (the registry's tests check this on the reference connectors).
//!
//! [`manifest!`]: crate::manifest!

/// Name of the custom section holding the manifest; the host looks for exactly this name.
pub const SECTION: &str = "patchbay:manifest";

/// Embeds a manifest file into the component as the `patchbay:manifest` custom section.
///
/// The path is relative to the directory of the connector crate's `Cargo.toml`. Invoke it once,
/// at the crate root, next to the `export_*!` line:
///
/// ```ignore
/// patchbay_sdk::manifest!("connector.toml");
/// patchbay_sdk::export_notification_provider!(Pager);
/// ```
///
/// The file is read at compile time (`include_bytes!`), so editing it rebuilds the crate. Its
/// contents are checked when the component is uploaded, not at compile time. On targets other
/// than WebAssembly (unit tests run natively) the bytes are still compiled in, but without the
/// section attribute.
#[macro_export]
macro_rules! manifest {
    ($path:literal) => {
        const _: () = {
            const PATCHBAY_MANIFEST_TOML: &[u8] =
                ::core::include_bytes!(::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", $path));
            #[cfg_attr(target_family = "wasm", unsafe(link_section = "patchbay:manifest"))]
            #[used]
            static PATCHBAY_MANIFEST: [u8; PATCHBAY_MANIFEST_TOML.len()] =
                $crate::__private::manifest_bytes::<{ PATCHBAY_MANIFEST_TOML.len() }>(PATCHBAY_MANIFEST_TOML);
        };
    };
}

/// Copies `bytes` into an array of its exact length, so a `static` can hold the file contents by
/// value (a `link_section` static may not contain pointers).
#[doc(hidden)]
pub const fn manifest_bytes<const N: usize>(bytes: &[u8]) -> [u8; N] {
    assert!(bytes.len() == N, "manifest length does not match the array length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::manifest_bytes;

    #[test]
    fn manifest_bytes_copies_every_byte() {
        let src = b"id = \"x\"\n";
        assert_eq!(&manifest_bytes::<9>(src), src);
    }
}
