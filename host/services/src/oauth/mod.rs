//! OAuth 2.0 owned by the host: `client` speaks RFC 6749/7636/7009 to providers, [`Tokens`]
//! keeps each installation's access token current, and [`Connections`] connects, inspects,
//! refreshes and disconnects installations for the API.
//!
//! Connecting is the authorization code with PKCE, or client credentials; the connector is
//! handed the access token only, refreshed ahead of expiry, on demand when a connector reports
//! 401, and single-flight across hosts.
//!
//! The connector finds the access token under the key of its `oauth2` credential; the client id,
//! client secret and refresh token stay in the host. Each host keeps the current access token of
//! the installations it calls in memory (checked for expiry on every call), so a call does not
//! open a ciphertext; a refresh goes through the store's lease and version check
//! ([`patchbay_store::oauth`]) and, within one process, through one lock per installation.
//!
//! A refresh the provider refuses (`invalid_grant` and friends), or [`MAX_REFRESH_FAILURES`]
//! failures in a row, leaves the installation `reauth_required`: calls answer 409 until someone
//! authorizes again, and an `installation.reauth_required` event goes to the outbox.

pub(crate) mod client;
mod connect;
mod tokens;

pub use connect::{
    Authorization, CALLBACK_PATH, CallbackFailure, Connections, ConnectionsDeps, GrantStatus, Revocation,
    spawn_refresher,
};
pub use tokens::{CurrentToken, MAX_REFRESH_FAILURES, OAuthContext, STATE_TTL_MS, Tokens, TokensDeps};
