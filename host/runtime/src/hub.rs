//! The seven hub categories, and which one a component implements (read from its exports).

use wasmtime::Engine;
use wasmtime::component::Component;

/// A hub category: one WIT world each. The same type as the manifest's category.
pub use patchbay_registry::Category as Hub;
/// The WIT package every connector is built against, and the version this host serves.
pub use patchbay_registry::{WIT_PACKAGE as PACKAGE, WIT_VERSION as VERSION};

/// How to build a component without `wasi:http`, which the host does not provide (the usual
/// cause: a default componentize-js build).
pub const WASI_HTTP_FIX: &str = "outbound HTTP goes through patchbay:connector/http (the host enforces the manifest's \
     allowed_hosts). With componentize-js, build with `--disable http fetch-event` (`patchbay connector build` does)";

/// The `lifecycle` export every connector must have.
pub(crate) fn lifecycle_export() -> String {
    format!("{PACKAGE}/lifecycle@{VERSION}")
}

/// Checks, before anything is compiled, what the component's import and export names show: it
/// exports `lifecycle` and at most one hub interface (`expected`'s, when given), and imports only
/// interfaces of this host's package and WASI. The types are checked when the compiled component
/// is linked; this only spares the compiler a component that cannot be accepted anyway.
pub(crate) fn precheck(wasm: &[u8], expected: Option<Hub>) -> Result<(), String> {
    // A binary whose names cannot be read is left to the compiler's full validation.
    let Some(patchbay_registry::ComponentNames { imports, exports }) = patchbay_registry::component_names(wasm) else {
        return Ok(());
    };
    if let Some(bad) = imports.iter().find(|i| !i.starts_with(&format!("{PACKAGE}/")) && !i.starts_with("wasi:")) {
        return Err(format!("component imports {bad}, which this host does not provide"));
    }
    if let Some(bad) = imports.iter().find(|i| i.starts_with("wasi:http/")) {
        return Err(format!("component imports {bad}, which this host does not provide: {WASI_HTTP_FIX}"));
    }
    if !exports.iter().any(|e| *e == lifecycle_export()) {
        return Err(format!(
            "component does not export {} (exports: {})",
            lifecycle_export(),
            if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
        ));
    }
    if let Some(h) = expected
        && !exports.contains(&h.export_name())
    {
        return Err(format!("the manifest's category is {h}, but the component does not export {}", h.export_name()));
    }
    Ok(())
}

/// Reads which hub a component implements from its exports. `Ok(None)` means it exports only
/// `lifecycle` (the base `connector` world).
pub(crate) fn detect(engine: &Engine, component: &Component) -> Result<Option<Hub>, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    if !exports.iter().any(|e| *e == lifecycle_export()) {
        return Err(format!(
            "component does not export {} (exports: {})",
            lifecycle_export(),
            if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
        ));
    }
    let hubs: Vec<Hub> = Hub::ALL.into_iter().filter(|h| exports.contains(&h.export_name())).collect();
    match hubs.as_slice() {
        [] => Ok(None),
        [h] => Ok(Some(*h)),
        many => Err(format!(
            "component exports several hub interfaces ({}); a connector implements exactly one hub world",
            many.iter().map(|h| h.interface()).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component importing the given names, and exporting nothing (enough for `precheck`,
    /// which reads names only).
    fn importing(names: &[&str]) -> Vec<u8> {
        let mut section = vec![names.len() as u8];
        for n in names {
            section.extend([0x00, n.len() as u8]);
            section.extend_from_slice(n.as_bytes());
            section.extend([0x05, 0x00]); // an instance of type 0
        }
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        bytes.extend([10, section.len() as u8]);
        bytes.extend(section);
        bytes
    }

    #[test]
    fn wasi_http_is_refused_before_compiling_with_the_fix() {
        let err = precheck(&importing(&["wasi:io/streams@0.2.6", "wasi:http/types@0.2.6"]), None).unwrap_err();
        assert!(err.starts_with("component imports wasi:http/types@0.2.6, which this host does not provide"), "{err}");
        assert!(err.contains("--disable http"), "{err}");
        let err = precheck(&importing(&["acme:thing/api"]), None).unwrap_err();
        assert_eq!(err, "component imports acme:thing/api, which this host does not provide");
        let err = precheck(&importing(&["wasi:io/streams@0.2.6"]), None).unwrap_err();
        assert!(err.starts_with("component does not export patchbay:connector/lifecycle@0.1.0"), "{err}");
    }

    #[test]
    fn names_round_trip() {
        for h in Hub::ALL {
            assert_eq!(h.world().parse::<Hub>().unwrap(), h);
        }
        assert!("payments".parse::<Hub>().is_err());
        assert_eq!(Hub::DataSync.interface(), "sync");
        assert_eq!(Hub::DataSync.export_name(), "patchbay:connector/sync@0.1.0");
    }
}
