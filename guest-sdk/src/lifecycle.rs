//! The `lifecycle` export every connector implements: health and credential checks.

pub use crate::bindings::connector::exports::patchbay::connector::lifecycle::{
    CredentialCheck, Guest as Lifecycle, HealthReport, HealthStatus,
};

impl HealthReport {
    /// Healthy, without a message.
    pub fn healthy() -> Self {
        Self { status: HealthStatus::Healthy, message: None }
    }

    /// Working, but not fully (e.g. optional configuration missing).
    pub fn degraded(message: impl Into<String>) -> Self {
        Self { status: HealthStatus::Degraded, message: Some(message.into()) }
    }

    /// Not working.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self { status: HealthStatus::Unhealthy, message: Some(message.into()) }
    }

    /// Replaces the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

impl CredentialCheck {
    /// The credentials were accepted.
    pub fn valid() -> Self {
        Self { valid: true, account: None, message: None }
    }

    /// The credentials were rejected, with the reason.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { valid: false, account: None, message: Some(message.into()) }
    }

    /// Who the credentials belong to (account id, workspace name).
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Adds a human-readable note.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}
