//! Operation-log entries: what a call (or the host, on an installation's behalf) recorded.
//! The runtime's `log` capability produces them, the store keeps them, the API lists them.

crate::string_enum! {
    /// Severity of an entry, lowest first.
    pub enum Level {
        /// Step-by-step detail.
        Trace = "trace",
        /// Detail for debugging.
        Debug = "debug",
        /// Normal progress.
        Info = "info",
        /// Something unexpected that did not stop the call.
        Warn = "warn",
        /// A failure.
        Error = "error",
    }
}

impl Level {
    /// `trace`, `debug`, `info`, `warn` or `error`, in any case.
    pub fn parse_any_case(s: &str) -> Option<Level> {
        Level::ALL.iter().copied().find(|l| l.as_str().eq_ignore_ascii_case(s))
    }
}

crate::string_enum! {
    /// Who produced an entry.
    pub enum Source {
        /// The connector, through the `log` import.
        Guest = "guest",
        /// The connector's stdout.
        Stdout = "stdout",
        /// The connector's stderr.
        Stderr = "stderr",
        /// An outbound HTTP request made for the connector.
        Http = "http",
        /// The host: call outcome, limits hit, dropped entries, changes made through the API.
        Host = "host",
    }
}

/// One operation-log entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// How severe the entry is.
    pub level: Level,
    /// Who produced it.
    pub source: Source,
    /// The entry's text.
    pub message: String,
    /// Key/value pairs attached to the entry, in the order given.
    pub fields: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_parse_in_any_case() {
        assert!(Level::Trace < Level::Error);
        assert_eq!(Level::parse_any_case("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse_any_case("loud"), None);
    }
}
