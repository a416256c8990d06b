//! The seven hub categories, and which one a component implements (read from its exports).

use std::fmt;
use std::str::FromStr;

use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package every connector is built against.
pub const PACKAGE: &str = "patchbay:connector";
/// The package version this host serves.
pub const VERSION: &str = "0.1.0";

/// A hub category: one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hub {
    PaymentGateway,
    ShippingCarrier,
    CommunicationChannel,
    NotificationProvider,
    StorageProvider,
    DataSync,
    WebhookEndpoint,
}

impl Hub {
    pub const ALL: [Hub; 7] = [
        Hub::PaymentGateway,
        Hub::ShippingCarrier,
        Hub::CommunicationChannel,
        Hub::NotificationProvider,
        Hub::StorageProvider,
        Hub::DataSync,
        Hub::WebhookEndpoint,
    ];

    /// The world's name in `wit/`.
    pub fn world(self) -> &'static str {
        match self {
            Hub::PaymentGateway => "payment-gateway",
            Hub::ShippingCarrier => "shipping-carrier",
            Hub::CommunicationChannel => "communication-channel",
            Hub::NotificationProvider => "notification-provider",
            Hub::StorageProvider => "storage-provider",
            Hub::DataSync => "data-sync",
            Hub::WebhookEndpoint => "webhook-endpoint",
        }
    }

    /// The interface the world exports.
    pub fn interface(self) -> &'static str {
        match self {
            Hub::PaymentGateway => "payments",
            Hub::ShippingCarrier => "shipping",
            Hub::CommunicationChannel => "messaging",
            Hub::NotificationProvider => "notifications",
            Hub::StorageProvider => "storage",
            Hub::DataSync => "sync",
            Hub::WebhookEndpoint => "webhooks",
        }
    }

    /// Fully qualified export name, e.g. `patchbay:connector/payments@0.1.0`.
    pub fn export_name(self) -> String {
        format!("{PACKAGE}/{}@{VERSION}", self.interface())
    }
}

impl fmt::Display for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

impl FromStr for Hub {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hub::ALL
            .into_iter()
            .find(|h| h.world() == s)
            .ok_or_else(|| format!("unknown hub {s:?}; expected one of {}", Hub::ALL.map(Hub::world).join(", ")))
    }
}

/// The `lifecycle` export every connector must have.
pub fn lifecycle_export() -> String {
    format!("{PACKAGE}/lifecycle@{VERSION}")
}

/// Reads which hub a component implements from its exports. `Ok(None)` means it exports only
/// `lifecycle` (the base `connector` world).
pub fn detect(engine: &Engine, component: &Component) -> Result<Option<Hub>, String> {
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
        assert_eq!(Hub::DataSync.export_name(), "patchbay:connector/sync@0.1.0");
    }
}
