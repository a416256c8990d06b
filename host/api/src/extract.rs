//! The request extractors every handler uses: [`Json`], [`Path`] and [`Query`] are axum's, but
//! they reject with [`ApiError`] (a precise 4xx in the API's error shape) instead of axum's plain
//! text; [`Json`] also answers as a JSON body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON request body (`Content-Type: application/json`), or a JSON response body.
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    /// A UTF-8 JSON object: another media type or charset is 415, a body past the limit 413
    /// (naming it), anything but an object (an array would fill a struct's fields in order) 422.
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        json_content_type(req.headers())?;
        let bytes = body_bytes(req, state).await?;
        Ok(Json(object_from(&bytes)?))
    }
}

/// A JSON object body that may be left out: an empty body is `T::default()` (whatever its
/// content type); a body is read as [`Json`] reads it.
pub(crate) struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        json_content_type(&headers)?;
        Ok(OptionalJson(object_from(&bytes)?))
    }
}

/// The body, within the router's limit (413 naming it).
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the JSON body is larger than {} bytes", crate::JSON_BODY_LIMIT),
            )
        } else {
            ApiError::new(e.status(), "bad_body", e.body_text())
        }
    })
}

/// A JSON object (an array would fill a struct's fields in order, so it is refused).
fn object_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid("invalid_body", "invalid JSON body: expected a JSON object")),
        None => return Err(ApiError::bad_request("invalid JSON body: the body is empty; send a JSON object")),
    }
    let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
    Ok(value)
}

/// `Content-Type: application/json` (or `application/…+json`), in UTF-8 when a charset is named.
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported =
        |m: &str| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", m.to_string());
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Err(unsupported("expected `Content-Type: application/json`"));
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let json = essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"));
    if !json {
        return Err(unsupported("expected `Content-Type: application/json`"));
    }
    for param in parts {
        if let Some((k, v)) = param.split_once('=')
            && k.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported("JSON bodies are UTF-8; send `charset=utf-8` or no charset"));
        }
    }
    Ok(())
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters.
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// Query parameters (unknown ones are refused where the type says `deny_unknown_fields`).
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}
