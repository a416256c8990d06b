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
