//! How calls end: the error kinds a connector reports (the WIT `connector-error` variant's cases)
//! and how a delivery attempt ended, which decides its retry.

crate::string_enum! {
    /// The kinds of error a connector reports.
    pub enum ConnectorErrorKind {
        /// Try again later (an outage, a timeout at the provider).
        Retryable = "retryable",
        /// Trying again cannot help (bad input, a refused operation).
        Permanent = "permanent",
        /// The provider asked to slow down; try again after its `retry-after`.
        RateLimited = "rate-limited",
        /// The provider refused the credentials.
        Unauthorized = "unauthorized",
    }
}

crate::string_enum! {
    /// How one delivery attempt ended: the connector's error kinds, plus `error` for host failures.
    pub enum AttemptOutcome {
        /// The connector accepted the delivery.
        Ok = "ok",
        /// The connector failed; try again later.
        Retryable = "retryable",
        /// The connector refused it; trying again cannot help.
        Permanent = "permanent",
        /// The provider asked to slow down.
        RateLimited = "rate-limited",
        /// The provider refused the installation's credentials.
        Unauthorized = "unauthorized",
        /// The call itself failed: trap, timeout, missing installation, host error.
        Error = "error",
    }
}

impl From<ConnectorErrorKind> for AttemptOutcome {
    fn from(k: ConnectorErrorKind) -> Self {
        match k {
            ConnectorErrorKind::Retryable => AttemptOutcome::Retryable,
            ConnectorErrorKind::Permanent => AttemptOutcome::Permanent,
            ConnectorErrorKind::RateLimited => AttemptOutcome::RateLimited,
            ConnectorErrorKind::Unauthorized => AttemptOutcome::Unauthorized,
        }
    }
}
