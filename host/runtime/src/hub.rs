//! The seven hub categories, and which one a component implements (read from its exports).

use wasmtime::Engine;
use wasmtime::component::Component;

/// A hub category: one WIT world each. The same type as the manifest's category.
pub use patchbay_registry::Category as Hub;
/// The WIT package every connector is built against, and the version this host serves.
pub use patchbay_registry::{WIT_PACKAGE as PACKAGE, WIT_VERSION as VERSION};

/// The `lifecycle` export every connector must have.
pub(crate) fn lifecycle_export() -> String {
    format!("{PACKAGE}/lifecycle@{VERSION}")
}

/// Checks, before anything is compiled, what the component's import and export names show: it
/// exports `lifecycle` and at most one hub interface (`expected`'s, when given), and imports only
/// interfaces of this host's package and WASI. The types are checked when the compiled component
/// is linked; this only spares the compiler a component that cannot be accepted anyway.
pub(crate) fn precheck(wasm: &[u8], expected: Option<Hub>) -> Result<(), String> {
    use wasmparser::{Parser, Payload};
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        // A payload the parser cannot read is left to the compiler's full validation.
        let Ok(payload) = payload else { return Ok(()) };
        match payload {
            // Not a component: the compiler says what it is.
            Payload::Version { encoding: wasmparser::Encoding::Module, .. } if depth == 0 => return Ok(()),
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for e in reader.into_iter().flatten() {
                    exports.push(e.name.name.to_string());
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for i in reader.into_iter().flatten() {
                    imports.push(i.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    if let Some(bad) = imports.iter().find(|i| !i.starts_with(&format!("{PACKAGE}/")) && !i.starts_with("wasi:")) {
        return Err(format!("component imports {bad}, which this host does not provide"));
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
