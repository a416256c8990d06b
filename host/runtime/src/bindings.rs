//! Host bindings generated from `wit/`, the same files the guest SDK reads.
//!
//! `connector` is the base world: it generates the capability imports (implemented once, in
//! `capability/`) and the `lifecycle` export. Each hub world reuses those imports through `with`
//! and adds its own export interface.

/// Base world: capability imports and the `lifecycle` export.
// Generated from wit/; the WIT files document these items.
#[allow(missing_docs)]
pub mod connector {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "patchbay:connector/connector",
        imports: {
            "patchbay:connector/http": async | trappable,
            "patchbay:connector/state": async | trappable,
            "patchbay:connector/events": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

macro_rules! hub_world {
    ($(#[$doc:meta])* $module:ident, $world:literal) => {
        $(#[$doc])*
        // Generated from wit/; the WIT files document these items.
        #[allow(missing_docs)]
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                imports: { default: async | trappable },
                exports: { default: async },
                additional_derives: [serde::Serialize, serde::Deserialize],
                with: {
                    "patchbay:connector/types": crate::bindings::connector::patchbay::connector::types,
                    "patchbay:connector/http": crate::bindings::connector::patchbay::connector::http,
                    "patchbay:connector/credentials": crate::bindings::connector::patchbay::connector::credentials,
                    "patchbay:connector/log": crate::bindings::connector::patchbay::connector::log,
                    "patchbay:connector/state": crate::bindings::connector::patchbay::connector::state,
                    "patchbay:connector/events": crate::bindings::connector::patchbay::connector::events,
                },
            });
        }
    };
}

hub_world!(
    /// `payment-gateway`: exports `payments`.
    payment_gateway,
    "patchbay:connector/payment-gateway"
);
hub_world!(
    /// `shipping-carrier`: exports `shipping`.
    shipping_carrier,
    "patchbay:connector/shipping-carrier"
);
hub_world!(
    /// `communication-channel`: exports `messaging`.
    communication_channel,
    "patchbay:connector/communication-channel"
);
hub_world!(
    /// `notification-provider`: exports `notifications`.
    notification_provider,
    "patchbay:connector/notification-provider"
);
hub_world!(
    /// `storage-provider`: exports `storage`.
    storage_provider,
    "patchbay:connector/storage-provider"
);
hub_world!(
    /// `data-sync`: exports `sync`.
    data_sync,
    "patchbay:connector/data-sync"
);
hub_world!(
    /// `webhook-endpoint`: exports `webhooks`.
    webhook_endpoint,
    "patchbay:connector/webhook-endpoint"
);

pub use connector::patchbay::connector::types::{ConnectorError, Failure, RateLimit};
