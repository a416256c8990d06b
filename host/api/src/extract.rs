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
        if bytes.iter().all(is_json_space) {
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

/// A JSON object (an array would fill a struct's fields in order, so it is refused). Numbers
/// written with a fraction or exponent that are whole and exact (`60.0`, `1e3`, below 2^53) read
/// as the integers they are, as JSON Schema's `integer` counts them.
/// JSON's own white space (RFC 8259 §2), not Rust's ASCII set: a form feed is no JSON.
fn is_json_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn object_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !is_json_space(b)) {
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid("invalid_body", "invalid JSON body: expected a JSON object")),
        None => return Err(ApiError::bad_request("invalid JSON body: the body is empty; send a JSON object")),
    }
    let bytes = whole_numbers_as_integers(bytes);
    let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
    Ok(value)
}

/// Rewrites number tokens outside strings that have a fraction or exponent and a whole, exact
/// value (at most 2^53 in magnitude) as integers: `60.0` → `60`, `1e3` → `1000`. Everything else,
/// including the bytes of strings, is kept as is; the result parses exactly where the input does.
pub(crate) fn whole_numbers_as_integers(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_number_byte = |b: u8| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E');
    let mut out: Option<Vec<u8>> = None;
    let (mut i, mut copied, mut in_string) = (0, 0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && is_number_byte(bytes[i]) {
                i += 1;
            }
            let token = &bytes[start..i];
            if token.iter().any(|c| matches!(c, b'.' | b'e' | b'E'))
                && let Some(v) = std::str::from_utf8(token).ok().and_then(whole_integer)
            {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                buf.extend_from_slice(&bytes[copied..start]);
                buf.extend_from_slice(v.to_string().as_bytes());
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(bytes),
        Some(mut buf) => {
            buf.extend_from_slice(&bytes[copied..]);
            std::borrow::Cow::Owned(buf)
        }
    }
}

/// The integer a JSON number token denotes exactly, when it is whole and at most 2^53 in
/// magnitude (decimal arithmetic, no rounding: `4503599627370496.5` is not whole); `None` for
/// anything else, including tokens that are not JSON numbers.
fn whole_integer(token: &str) -> Option<i64> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (negative, rest) = token.strip_prefix('-').map_or((false, token), |r| (true, r));
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(p) => {
            let e = &rest[p + 1..];
            if !all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)) {
                return None;
            }
            (&rest[..p], e.parse::<i32>().ok()?)
        }
        None => (rest, 0),
    };
    let (int_part, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !all_digits(int_part) || (int_part.len() > 1 && int_part.starts_with('0')) {
        return None;
    }
    if mantissa.contains('.') && !all_digits(fraction) {
        return None;
    }
    // value = digits × 10^scale
    let digits = format!("{int_part}{fraction}");
    let mut scale = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let mut d = digits.trim_start_matches('0');
    while scale < 0 && d.ends_with('0') {
        d = &d[..d.len() - 1];
        scale += 1;
    }
    if d.is_empty() {
        return Some(0);
    }
    let scale = u32::try_from(scale).ok()?;
    if d.len() + scale as usize > 16 {
        return None;
    }
    let v = d.parse::<i64>().ok()?.checked_mul(10i64.checked_pow(scale)?)?;
    if v > 1 << 53 {
        return None;
    }
    Some(if negative { -v } else { v })
}

/// For optional body fields that may be left out but not sent as `null` (the document types them
/// without `null`): `#[serde(default, deserialize_with = "present")]`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
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

#[cfg(test)]
mod tests {
    use super::{whole_integer, whole_numbers_as_integers};

    #[test]
    fn whole_numbers_read_as_integers() {
        let rewrite = |s: &str| String::from_utf8(whole_numbers_as_integers(s.as_bytes()).into_owned()).unwrap();
        assert_eq!(rewrite(r#"{"a":60.0,"b":1e3,"c":-2.50E1}"#), r#"{"a":60,"b":1000,"c":-25}"#);
        assert_eq!(rewrite(r#"{"s":"60.0 \" 1.0","n":[1.0,2,0.5]}"#), r#"{"s":"60.0 \" 1.0","n":[1,2,0.5]}"#);
        // Not whole, not exact, not a number: kept.
        for kept in [r#"{"a":1.5}"#, r#"{"a":1e300}"#, r#"{"a":4503599627370496.5}"#, r#"{"a":-.0}"#, r#"{"a":01.0}"#] {
            assert_eq!(rewrite(kept), kept);
        }
        assert_eq!(whole_integer("9007199254740992.0"), Some(1 << 53));
        assert_eq!(whole_integer("9007199254740993.0"), None);
        assert_eq!(whole_integer("-0.0"), Some(0));
        assert_eq!(whole_integer("1.000e2"), Some(100));
        assert_eq!(whole_integer("1e-1"), None);
        assert_eq!(whole_integer("1e"), None);
        assert_eq!(whole_integer("1."), None);
        assert_eq!(whole_integer("1e99999999999"), None);
    }
}
