//! Raw bindings generated from `wit/`, one module per world.
//!
//! The `connector` world is generated once and owns the capability imports (`http`,
//! `credentials`, `log`, `state`, `events`), the shared `types` and the `lifecycle` export.
//! The hub modules generate only their hub interface and map `types` onto the `connector`
//! module with `with:`, so every helper written against the capabilities works in every world
//! and the `lifecycle` glue exists exactly once (see `hub_world!` for why).
//!
//! Each `generate!` uses `pub_export_macro`, which makes wit-bindgen split the component-type
//! metadata: the SDK only carries the imports, and a world's exports are described by a custom
//! section that its export macro emits in the connector crate. Linking the SDK therefore never
//! makes a component claim exports of worlds it does not implement.
//!
//! Connector authors normally use the re-exports in the crate root and the world modules; this
//! module is public for anything they do not cover.

/// Generates the export side of one hub world.
///
/// wit-bindgen always generates an exported interface in full, and a public export macro is a
/// crate-level `#[macro_export]` name, so generating the seven hub worlds from `worlds.wit` would
/// define the `lifecycle` glue seven times under one name. Each hub module is therefore generated
/// from an inline world that exports only the hub interface; `lifecycle` and the imports come
/// from [`connector`], and the SDK's `export_*!` macros invoke both halves. The component that
/// results has exactly the imports and exports of the corresponding world in `worlds.wit`.
macro_rules! hub_world {
    ($(#[$meta:meta])* $module:ident, $inline:literal, $bindings_module:literal) => {
        $(#[$meta])*
        pub mod $module {
            wit_bindgen::generate!({
                path: "../wit",
                inline: $inline,
                runtime_path: "patchbay_sdk::__private::wit_bindgen::rt",
                default_bindings_module: $bindings_module,
                pub_export_macro: true,
                additional_derives: [Clone, PartialEq],
                with: {
                    "patchbay:connector/types@0.1.0": patchbay_sdk::bindings::connector::patchbay::connector::types,
                },
            });
        }
    };
}

/// Bindings for the base `connector` world: all capability imports and the `lifecycle` export.
pub mod connector {
    wit_bindgen::generate!({
        path: "../wit",
        world: "connector",
        runtime_path: "patchbay_sdk::__private::wit_bindgen::rt",
        default_bindings_module: "patchbay_sdk::bindings::connector",
        pub_export_macro: true,
        additional_derives: [Clone, PartialEq],
    });
}

hub_world!(
    /// Export bindings for the `payment-gateway` world (the `payments` interface).
    payment_gateway,
    "package patchbay:sdk-payment-gateway; world payment-gateway { export patchbay:connector/payments@0.1.0; }",
    "patchbay_sdk::bindings::payment_gateway"
);
hub_world!(
    /// Export bindings for the `shipping-carrier` world (the `shipping` interface).
    shipping_carrier,
    "package patchbay:sdk-shipping-carrier; world shipping-carrier { export patchbay:connector/shipping@0.1.0; }",
    "patchbay_sdk::bindings::shipping_carrier"
);
hub_world!(
    /// Export bindings for the `communication-channel` world (the `messaging` interface).
    communication_channel,
    "package patchbay:sdk-communication-channel; world communication-channel { export patchbay:connector/messaging@0.1.0; }",
    "patchbay_sdk::bindings::communication_channel"
);
hub_world!(
    /// Export bindings for the `notification-provider` world (the `notifications` interface).
    notification_provider,
    "package patchbay:sdk-notification-provider; world notification-provider { export patchbay:connector/notifications@0.1.0; }",
    "patchbay_sdk::bindings::notification_provider"
);
hub_world!(
    /// Export bindings for the `storage-provider` world (the `storage` interface).
    storage_provider,
    "package patchbay:sdk-storage-provider; world storage-provider { export patchbay:connector/storage@0.1.0; }",
    "patchbay_sdk::bindings::storage_provider"
);
hub_world!(
    /// Export bindings for the `data-sync` world (the `sync` interface).
    data_sync,
    "package patchbay:sdk-data-sync; world data-sync { export patchbay:connector/sync@0.1.0; }",
    "patchbay_sdk::bindings::data_sync"
);
hub_world!(
    /// Export bindings for the `webhook-endpoint` world (the `webhooks` interface).
    webhook_endpoint,
    "package patchbay:sdk-webhook-endpoint; world webhook-endpoint { export patchbay:connector/webhooks@0.1.0; }",
    "patchbay_sdk::bindings::webhook_endpoint"
);
