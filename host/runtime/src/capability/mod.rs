//! Host capabilities lent to connectors: one module per WIT import.
//!
//! Each module is self-contained, in the shape of wasmtime's `wasi-keyvalue` crate: its policy,
//! its limits, the per-call view its WIT `Host` implementation works on, the trait of the backend
//! it needs when data outlives a call, its own `add_to_linker`, and its tests.
//!
//! | capability | limits | backend |
//! |---|---|---|
//! | [`http`] | [`http::HttpLimits`] | the outbound client with its [`http::NetworkPolicy`]; an [`http::EgressBudget`] a provider's 429 pauses |
//! | [`credentials`] | — | a `credentials::CredentialSource`: the installation's config and opened secrets |
//! | [`log`] | [`log::LogLimits`] | an [`log::OperationLog`] the call's entries go to when it ends |
//! | [`state`] | [`state::StateLimits`] | a [`state::StateStore`] |
//! | [`events`] | [`events::EventLimits`] | an [`events::EventSink`] |
//!
//! In-memory backends live beside each trait (`patchbay run`, tests); the durable ones are the
//! services' adapters over the store, injected through [`crate::Services`]. Only
//! [`crate::Runtime`] lists all capabilities.

pub mod credentials;
pub mod events;
pub mod http;
pub mod log;
pub mod state;
pub(crate) mod stdio;

/// Declares the `HasData` marker a capability's bindgen `add_to_linker` needs to hand its host
/// functions a per-call view instead of the whole store data.
macro_rules! view_data {
    ($marker:ident => $view:ident) => {
        struct $marker;

        impl wasmtime::component::HasData for $marker {
            type Data<'a> = $view<'a>;
        }
    };
}
pub(crate) use view_data;
