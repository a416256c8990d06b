//! The domain error every service returns: an [`ErrorKind`] saying what went wrong in terms a
//! caller can act on, a message written for that caller, and optional context (where in the
//! request, the connector's own error payload).
//!
//! Nothing here knows HTTP. The API crate turns each kind into a status, a stable error code and a
//! body in one place; workers match kinds (`ErrorKind::QuotaExceeded { .. }`, never a status
//! code or a code string).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::outcome::ConnectorErrorKind;

/// `Result` with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request does not parse: its syntax, a header or a parameter of the wrong form.
    BadRequest,
    /// Part of the request is not acceptable; says which part.
    Invalid(Field),
    /// The request names something that does not exist, such as a connector or a version.
    Unknown(Unknown),
    /// The request cannot be done with what the installation's connector offers.
    Unsupported(Unsupported),
    /// An uploaded component was refused.
    Package(Package),
    /// No valid credential came with the request.
    Unauthorized,
    /// The credential lacks the scope or role the request needs.
    Forbidden,
    /// The addressed resource does not exist, or belongs to another tenant.
    NotFound(Missing),
    /// The request conflicts with the resource's current state.
    Conflict(Conflict),
    /// The request or its payload is larger than allowed.
    TooLarge,
    /// The provider budget is exhausted: a call can run after `retry_after` (when known).
    QuotaExceeded {
        /// How long until the budget allows a call; `None` when the budget does not say.
        retry_after: Option<Duration>,
    },
    /// The installation's OAuth grant was refused by its provider: someone must authorize again.
    ReauthRequired,
    /// A webhook request was refused.
    Webhook(Webhook),
    /// The connector answered with its own error (`kind` when it says which).
    Connector {
        /// The kind of the connector's error; `None` when not known.
        kind: Option<ConnectorErrorKind>,
        /// How long the connector asked the caller to wait (rate limits); `None` otherwise.
        retry_after: Option<Duration>,
    },
    /// The connector call failed in the host: deadline, limits, trap.
    Call(CallFailure),
    /// A provider the host calls on a tenant's behalf failed (an OAuth token endpoint).
    Provider(Provider),
    /// The database (or another dependency of the host) is unavailable; try again.
    Unavailable,
    /// A broken invariant in the host.
    Internal,
}

impl ErrorKind {
    /// A short snake-case name of the kind, for logs and stored records (`quota_exceeded`,
    /// `not_found`, …). Not an API error code: the API crate chooses those.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Invalid(_) => "invalid",
            ErrorKind::Unknown(_) => "unknown",
            ErrorKind::Unsupported(_) => "unsupported",
            ErrorKind::Package(_) => "invalid_package",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound(_) => "not_found",
            ErrorKind::Conflict(_) => "conflict",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::QuotaExceeded { .. } => "quota_exceeded",
            ErrorKind::ReauthRequired => "reauth_required",
            ErrorKind::Webhook(_) => "webhook_refused",
            ErrorKind::Connector { .. } => "connector_error",
            ErrorKind::Call(_) => "call_failed",
            ErrorKind::Provider(_) => "provider_failed",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether repeating the same request cannot succeed: what it names is missing, or what it
    /// says can never be accepted. (A conflict, a quota or an outage may pass.)
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ErrorKind::BadRequest
                | ErrorKind::Invalid(_)
                | ErrorKind::Unknown(_)
                | ErrorKind::Unsupported(_)
                | ErrorKind::Package(_)
                | ErrorKind::NotFound(_)
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

crate::string_enum! {
    /// Which part of a request was invalid.
    pub enum Field {
        /// A request body that parses but does not fit.
        Body = "body",
        /// An operation's JSON input.
        Input = "input",
        /// A display name (of an installation).
        Name = "name",
        /// An identifier the caller chose (a tenant id).
        Id = "id",
        /// An installation's configuration, checked against its connector's config schema.
        Config = "config",
        /// An installation's credential values.
        Credentials = "credentials",
        /// The installation whose credentials another installation of the same bundle shares.
        CredentialsFrom = "credentials_from",
        /// An installation's resource limits (timeout, memory, fuel).
        Limits = "limits",
        /// The provider API version chosen for an installation.
        ApiVersion = "api_version",
        /// A route's definition: its installations, event types, filter or operation.
        Route = "route",
        /// A sync's schedule (interval or cron expression).
        Schedule = "schedule",
        /// A sync's field mapping.
        Mapping = "mapping",
        /// A sync's definition: entity, direction, mode or source.
        Sync = "sync",
        /// An API key's scopes.
        Scopes = "scopes",
        /// A deprecated version's sunset date.
        Sunset = "sunset",
        /// A retention policy: its classes, ages and counts.
        Retention = "retention",
        /// A value a stored constraint refused.
        Value = "value",
    }
}

crate::string_enum! {
    /// What a request named that does not exist.
    pub enum Unknown {
        /// A connector id the catalog does not hold.
        Connector = "connector",
        /// A version of a connector that the catalog does not hold.
        Version = "version",
        /// An entity a data-sync connector does not offer.
        Entity = "entity",
    }
}

crate::string_enum! {
    /// What the installation's connector does not offer.
    pub enum Unsupported {
        /// Syncs need a data-sync connector.
        NotASyncConnector = "not_a_sync_connector",
        /// The entity cannot be read incrementally, or cannot be written.
        SyncMode = "sync_mode",
    }
}

crate::string_enum! {
    /// Why an uploaded component was refused.
    pub enum Package {
        /// Not WebAssembly, or WebAssembly that does not validate.
        MalformedWasm = "malformed_wasm",
        /// A core module where a component was expected.
        NotAComponent = "not_a_component",
        /// The component has no `patchbay:manifest` custom section.
        MissingManifest = "missing_manifest",
        /// The manifest is duplicated, not UTF-8 or not valid.
        InvalidManifest = "invalid_manifest",
        /// The component's signature does not verify.
        BadSignature = "bad_signature",
        /// The host only accepts signed components.
        SignatureRequired = "signature_required",
        /// The component does not export its category's world, or does not link.
        WorldMismatch = "world_mismatch",
        /// Compiling the component took longer than the host allows.
        CompileTimeout = "compile_timeout",
    }
}

crate::string_enum! {
    /// What was not found.
    pub enum Missing {
        /// The addressed resource (installation, route, run, …).
        Resource = "resource",
        /// An operation the connector does not export.
        Operation = "operation",
        /// A webhook address.
        Hook = "hook",
        /// The installation's connector receives no webhooks.
        WebhookEndpoint = "webhook_endpoint",
        /// The installation has no OAuth grant.
        OAuthGrant = "oauth_grant",
    }
}

crate::string_enum! {
    /// What the request conflicts with.
    pub enum Conflict {
        /// Existing data: a duplicate name, an immutable version, a run already active.
        State = "state",
        /// The installation is disabled.
        InstallationDisabled = "installation_disabled",
        /// Only dead deliveries can be redriven.
        NotDead = "not_dead",
        /// The connector declares no OAuth credentials.
        NotOAuth = "not_oauth",
        /// The OAuth client is not configured (client id missing, endpoint template unfilled).
        OAuthNotConfigured = "oauth_not_configured",
        /// The installation is not connected to its OAuth provider yet.
        OAuthNotConnected = "oauth_not_connected",
        /// The grant needs no authorization (client credentials).
        OAuthNoAuthorization = "oauth_no_authorization",
        /// The installation's connector receives no webhooks.
        NotAWebhookEndpoint = "not_a_webhook_endpoint",
        /// The connector version's component is still compiling.
        VersionCompiling = "version_compiling",
        /// The connector version's component failed to compile.
        VersionFailed = "version_failed",
    }
}

/// Why a webhook request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// Its signature could not be verified (or no secret is configured).
    Unverified,
    /// The connector cannot read it.
    Rejected,
    /// The connector asked the sender to slow down.
    RateLimited {
        /// How long the sender should wait before sending again.
        retry_after: Duration,
    },
    /// The connector could not take it now.
    Unavailable,
}

crate::string_enum! {
    /// How a connector call failed in the host.
    pub enum CallFailure {
        /// The call ran past its deadline.
        DeadlineExceeded = "deadline_exceeded",
        /// The host could not run it (shutting down).
        HostUnavailable = "host_unavailable",
        /// A trap, a limit, a failed instantiation.
        Failed = "failed",
    }
}

crate::string_enum! {
    /// How a provider the host calls failed.
    pub enum Provider {
        /// The OAuth token endpoint failed or refused a refresh.
        OAuthUnavailable = "oauth_unavailable",
        /// Another host has been refreshing the token for too long.
        OAuthBusy = "oauth_busy",
        /// The authorization code could not be exchanged.
        OAuthExchangeFailed = "oauth_exchange_failed",
        /// An OAuth endpoint of the installation is not a destination the host sends requests to
        /// (a blocked network); nothing was sent.
        OAuthBlocked = "oauth_blocked",
    }
}

/// A failed operation: what kind of failure, a message for the caller, and context.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<(&'static str, Value)>,
}

impl Error {
    /// An error of `kind` with `message` for the caller and no context.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), context: Vec::new() }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Extra facts for the caller, e.g. `("path", "fields[0].transform")` or a connector's
    /// `("details", {...})`.
    pub fn context(&self) -> &[(&'static str, Value)] {
        &self.context
    }

    /// The same error with a fact added to its context.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// The same error with `prefix: ` before its message.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    /// A [`ErrorKind::BadRequest`] error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// An [`ErrorKind::Invalid`] error naming the part of the request that is not acceptable.
    pub fn invalid(field: Field, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid(field), message)
    }

    /// An [`ErrorKind::Unknown`] error naming what does not exist.
    pub fn unknown(what: Unknown, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unknown(what), message)
    }

    /// An [`ErrorKind::Unauthorized`] error: no valid credential came with the request.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }

    /// A [`ErrorKind::Forbidden`] error: the credential lacks the scope or role needed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// The addressed resource does not exist (or is another tenant's).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound(Missing::Resource), message)
    }

    /// An [`ErrorKind::NotFound`] error saying what was not found.
    pub fn missing(what: Missing, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound(what), message)
    }

    /// An [`ErrorKind::Conflict`] error saying what the request conflicts with.
    pub fn conflict(with: Conflict, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict(with), message)
    }

    /// An [`ErrorKind::Internal`] error: a broken invariant in the host.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An [`ErrorKind::Unavailable`] error: a dependency of the host is down; try again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_kind_message_and_context() {
        let e = Error::invalid(Field::Route, "must list 1 to 16 globs").with("path", "event_types").prefixed("route");
        assert_eq!(e.kind(), &ErrorKind::Invalid(Field::Route));
        assert_eq!(e.to_string(), "route: must list 1 to 16 globs");
        assert_eq!(e.context(), &[("path", Value::from("event_types"))]);
        assert_eq!(Error::missing(Missing::Hook, "no hook").kind(), &ErrorKind::NotFound(Missing::Hook));
    }
}
