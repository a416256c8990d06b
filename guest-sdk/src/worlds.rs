//! One module per hub world: the trait a connector implements and the types it uses, plus the
//! `export_*!` macros that turn an implementing type into the component's exports.
//!
//! Every world also exports `lifecycle`, so the type given to an `export_*!` macro implements
//! [`Lifecycle`](crate::Lifecycle) as well as the world's trait.

/// Defines a world module re-exporting the hub interface's generated types, with its `Guest`
/// trait under the world's name.
macro_rules! world_module {
    ($(#[$meta:meta])* $module:ident, $interface:ident, $Trait:ident) => {
        $(#[$meta])*
        pub mod $module {
            pub use crate::bindings::$module::exports::patchbay::connector::$interface::*;
            pub use crate::bindings::$module::exports::patchbay::connector::$interface::Guest as $Trait;
        }
    };
}

world_module!(
    /// The `payment-gateway` world (Stripe-style sessions, captures, refunds); export with
    /// [`export_payment_gateway!`](crate::export_payment_gateway!).
    payment_gateway, payments, PaymentGateway
);
world_module!(
    /// The `shipping-carrier` world (rates, labels, tracking); export with
    /// [`export_shipping_carrier!`](crate::export_shipping_carrier!).
    shipping_carrier, shipping, ShippingCarrier
);
world_module!(
    /// The `communication-channel` world (chat and SMS messaging); export with
    /// [`export_communication_channel!`](crate::export_communication_channel!).
    communication_channel, messaging, CommunicationChannel
);
world_module!(
    /// The `notification-provider` world (e-mail, push, incoming webhooks); export with
    /// [`export_notification_provider!`](crate::export_notification_provider!).
    notification_provider, notifications, NotificationProvider
);
world_module!(
    /// The `storage-provider` world (S3-style object storage); export with
    /// [`export_storage_provider!`](crate::export_storage_provider!).
    storage_provider, storage, StorageProvider
);
world_module!(
    /// The `data-sync` world (paginated reads and batched writes); export with
    /// [`export_data_sync!`](crate::export_data_sync!).
    data_sync, sync, DataSync
);
world_module!(
    /// The `webhook-endpoint` world (verify, normalize and deliver webhooks); export with
    /// [`export_webhook_endpoint!`](crate::export_webhook_endpoint!).
    webhook_endpoint, webhooks, WebhookEndpoint
);

impl webhook_endpoint::IncomingRequest {
    /// The first value of header `name` (case-insensitive; the host lower-cases names).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }
}

impl webhook_endpoint::Verification {
    /// The request is authentic; `webhook_id` is the sender's delivery id, used for dedupe.
    pub fn valid(webhook_id: Option<String>) -> Self {
        Self::Valid(webhook_id)
    }

    /// The request is not authentic; `reason` is shown to the sender with the 401.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid(reason.into())
    }
}

/// Exports `$ty` as a component of the base `connector` world (only `lifecycle`).
///
/// The hub macros below call this one; use it alone for a connector that exports nothing else.
#[macro_export]
macro_rules! export_connector {
    ($ty:ident) => {
        $crate::bindings::connector::export!($ty with_types_in $crate::bindings::connector);
    };
}

/// Exports `$ty` as a `payment-gateway` component; `$ty` implements
/// [`Lifecycle`](crate::Lifecycle) and [`PaymentGateway`](crate::payment_gateway::PaymentGateway).
#[macro_export]
macro_rules! export_payment_gateway {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::payment_gateway::export!($ty with_types_in $crate::bindings::payment_gateway);
    };
}

/// Exports `$ty` as a `shipping-carrier` component; `$ty` implements
/// [`Lifecycle`](crate::Lifecycle) and [`ShippingCarrier`](crate::shipping_carrier::ShippingCarrier).
#[macro_export]
macro_rules! export_shipping_carrier {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::shipping_carrier::export!($ty with_types_in $crate::bindings::shipping_carrier);
    };
}

/// Exports `$ty` as a `communication-channel` component; `$ty` implements
/// [`Lifecycle`](crate::Lifecycle) and
/// [`CommunicationChannel`](crate::communication_channel::CommunicationChannel).
#[macro_export]
macro_rules! export_communication_channel {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::communication_channel::export!($ty with_types_in $crate::bindings::communication_channel);
    };
}

/// Exports `$ty` as a `notification-provider` component; `$ty` implements
/// [`Lifecycle`](crate::Lifecycle) and
/// [`NotificationProvider`](crate::notification_provider::NotificationProvider).
#[macro_export]
macro_rules! export_notification_provider {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::notification_provider::export!($ty with_types_in $crate::bindings::notification_provider);
    };
}

/// Exports `$ty` as a `storage-provider` component; `$ty` implements
/// [`Lifecycle`](crate::Lifecycle) and [`StorageProvider`](crate::storage_provider::StorageProvider).
#[macro_export]
macro_rules! export_storage_provider {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::storage_provider::export!($ty with_types_in $crate::bindings::storage_provider);
    };
}

/// Exports `$ty` as a `data-sync` component; `$ty` implements [`Lifecycle`](crate::Lifecycle)
/// and [`DataSync`](crate::data_sync::DataSync).
#[macro_export]
macro_rules! export_data_sync {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::data_sync::export!($ty with_types_in $crate::bindings::data_sync);
    };
}

/// Exports `$ty` as a `webhook-endpoint` component; `$ty` implements
/// [`Lifecycle`](crate::Lifecycle) and [`WebhookEndpoint`](crate::webhook_endpoint::WebhookEndpoint).
#[macro_export]
macro_rules! export_webhook_endpoint {
    ($ty:ident) => {
        $crate::export_connector!($ty);
        $crate::bindings::webhook_endpoint::export!($ty with_types_in $crate::bindings::webhook_endpoint);
    };
}
