//! End-to-end tests and benchmarks for patchbay: the guest components they run are built by
//! `build.rs` and listed in [`components`].

/// Absolute paths of the guest components `build.rs` compiled for wasm32-wasip2: one constant per
/// component (`GITHUB`, `NOTIFY_WEBHOOK`, `HOSTILE`, `TRIVIAL`) and `ALL` as `(crate name, path)`.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}
