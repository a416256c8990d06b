//! Cursor encoding: small JSON documents, opaque to the host, that let a fresh sandbox continue
//! exactly where the previous batch ended.
//!
//! [`RunCursor`] is the shape shared by the paginated connectors (`rest-source`, `airtable`):
//!
//! * between runs — `{"w": <watermark>}` (or `{}`): where the next run starts. No position, so
//!   pagination restarts from the beginning; an incremental run filters on `w`.
//! * inside a run — `{"p": <position>, "w": <the run's watermark filter>, "m": <largest cursor
//!   value seen so far>}`.
//!
//! The last batch of a run (`done: true`) returns the between-runs form with `w` raised to the
//! largest value seen, so the next incremental run asks only for what changed since.

use patchbay_sdk::ConnectorError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::watermark;

/// Parses a cursor this connector wrote; anything else is a permanent `invalid_cursor` error.
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, ConnectorError> {
    serde_json::from_str(cursor).map_err(|e| {
        ConnectorError::permanent("invalid_cursor", format!("the cursor was not written by this connector: {e}"))
    })
}

/// Writes a cursor.
pub fn encode<T: Serialize>(cursor: &T) -> Result<String, ConnectorError> {
    serde_json::to_string(cursor)
        .map_err(|e| ConnectorError::permanent("invalid_cursor", format!("cannot encode the cursor: {e}")))
}

/// The cursor of a paginated, optionally incremental read (see the module doc). `P` is the
/// connector's page position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>"))]
pub struct RunCursor<P> {
    /// Where the run continues; absent between runs.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub position: Option<P>,
    /// Inside a run: the watermark the run filters on (incremental) or started from (full).
    /// Between runs: the watermark for the next run.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Value>,
    /// Inside a run: the largest cursor-field value seen so far.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
}

impl<P> Default for RunCursor<P> {
    fn default() -> Self {
        RunCursor { position: None, since: None, max: None }
    }
}

impl<P: Serialize + DeserializeOwned> RunCursor<P> {
    /// The cursor the host passed (`None`: a first run from the beginning).
    pub fn from_request(cursor: Option<&str>) -> Result<Self, ConnectorError> {
        match cursor {
            None => Ok(RunCursor::default()),
            Some(c) if c.trim().is_empty() => Ok(RunCursor::default()),
            Some(c) => decode(c),
        }
    }

    /// Whether this cursor starts a new run (no page position).
    pub fn starts_run(&self) -> bool {
        self.position.is_none()
    }

    /// The cursor after a batch that ended at `position` (`None`: the run is done), having seen
    /// cursor-field values up to `seen`.
    pub fn advance(&self, position: Option<P>, seen: Option<Value>) -> RunCursor<P> {
        let max = watermark::max(self.max.clone(), seen);
        match position {
            Some(p) => RunCursor { position: Some(p), since: self.since.clone(), max },
            None => RunCursor { position: None, since: watermark::max(self.since.clone(), max), max: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_carries_its_filter_and_ends_with_the_new_watermark() {
        let start: RunCursor<u64> = RunCursor::from_request(Some(r#"{"w":"2024-01-01T00:00:00Z"}"#)).expect("valid");
        assert!(start.starts_run());
        let mid = start.advance(Some(100), Some(json!("2024-03-01T00:00:00Z")));
        assert_eq!(encode(&mid).expect("json"), r#"{"p":100,"w":"2024-01-01T00:00:00Z","m":"2024-03-01T00:00:00Z"}"#);
        let again: RunCursor<u64> = decode(&encode(&mid).expect("json")).expect("round trip");
        assert_eq!(again, mid);
        let done = mid.advance(None, Some(json!("2024-02-01T00:00:00Z")));
        assert_eq!(encode(&done).expect("json"), r#"{"w":"2024-03-01T00:00:00Z"}"#);
        // A run that saw nothing keeps its watermark.
        let empty: RunCursor<u64> = RunCursor::default();
        assert_eq!(encode(&empty.advance(None, None)).expect("json"), "{}");
        assert!(RunCursor::<u64>::from_request(Some("nonsense")).is_err());
    }
}
