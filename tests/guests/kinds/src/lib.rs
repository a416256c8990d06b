//! Echoes values of every WIT type kind (`patchbay-test:kinds/kinds`), for the tests of the host's
//! generic JSON mapping. Also exports `lifecycle` so the host loads it like any connector.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "patchbay-test:kinds/kinds-guest",
    generate_all,
});

use exports::patchbay::connector::lifecycle::{self, CredentialCheck, HealthReport, HealthStatus};
use exports::patchbay_test::kinds::kinds::{Counter, Guest, GuestCounter, Nested, Scalars};
use patchbay::connector::types::{ConnectorError, Failure, RateLimit};

struct Kinds;

/// The `counter` resource.
struct Count(u32);

impl GuestCounter for Count {
    fn new(start: u32) -> Self {
        Count(start)
    }

    fn get(&self) -> u32 {
        self.0
    }
}

impl lifecycle::Guest for Kinds {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        Ok(HealthReport { status: HealthStatus::Healthy, message: Some("kinds".to_owned()) })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        Ok(CredentialCheck { valid: true, account: None, message: None })
    }
}

impl Guest for Kinds {
    type Counter = Count;

    fn make_counter(start: u32) -> Counter {
        Counter::new(Count(start))
    }

    fn echo_scalars(value: Scalars) -> Scalars {
        value
    }

    fn echo_nested(value: Nested) -> Nested {
        value
    }

    fn many_params(first_name: String, count: Option<u32>, tags: Vec<String>) -> (String, Option<u32>, u32) {
        (first_name, count, tags.len() as u32)
    }

    fn nothing() {}

    fn fail(kind: String, n: u32) -> Result<u32, ConnectorError> {
        let failure = || Failure { code: "test".to_owned(), message: format!("asked for {kind}") };
        match kind.as_str() {
            "ok" => Ok(n),
            "retryable" => Err(ConnectorError::Retryable(failure())),
            "permanent" => Err(ConnectorError::Permanent(failure())),
            "unauthorized" => Err(ConnectorError::Unauthorized(failure())),
            _ => Err(ConnectorError::RateLimited(RateLimit { retry_after_ms: u64::from(n), message: kind.clone() })),
        }
    }

    fn health_check() -> String {
        "kinds.health-check".to_owned()
    }

    fn boom(message: String) -> u32 {
        panic!("{message}")
    }

    fn make_bytes(n: u32) -> Vec<u8> {
        (0..n).map(|i| i as u8).collect()
    }

    fn sum_bytes(data: Vec<u8>) -> u32 {
        data.iter().fold(0u32, |sum, b| sum.wrapping_add(u32::from(*b)))
    }
}

export!(Kinds);
