//! Request bodies read by hand: uploads and webhooks, where the size cap is the host's setting
//! and the bytes must be kept exactly as sent.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;

use super::{ApiError, ApiResult};

/// Reads a body of at most `max` bytes. A larger one is read on (up to a bound) and discarded
/// before answering 413 with `too_large()`'s message, so clients that send the whole body before
/// reading the response see the error instead of a reset connection.
pub(crate) async fn read_capped(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    too_large: impl Fn() -> String,
) -> ApiResult<Vec<u8>> {
    let error = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large());
    let drain_limit = max.saturating_mul(4).max(64 * 1024 * 1024);
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_limit as u64) {
        return Err(error());
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(0).min(max)));
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total <= max {
            buf.extend_from_slice(&chunk);
        } else if total > drain_limit {
            break;
        }
    }
    if total > max {
        return Err(error());
    }
    Ok(buf)
}
