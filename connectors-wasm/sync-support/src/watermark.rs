//! Watermarks for incremental reads: the largest value of a cursor field (`updated_at`) seen.
//!
//! Values are kept as JSON (a string or a number) exactly as the source wrote them, so they can
//! be sent back verbatim as a `since` filter. Comparison: numbers numerically; strings that are
//! RFC 3339 timestamps by instant (then by text); other strings by text; numbers sort before
//! strings.

use std::cmp::Ordering;

use serde_json::Value;

/// Orders two watermark values (see the module doc).
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => {
            match (patchbay_sdk::time::rfc3339_to_ms(x), patchbay_sdk::time::rfc3339_to_ms(y)) {
                (Some(mx), Some(my)) => mx.cmp(&my).then_with(|| x.cmp(y)),
                _ => x.cmp(y),
            }
        }
        (Value::Number(_), Value::String(_)) => Ordering::Less,
        (Value::String(_), Value::Number(_)) => Ordering::Greater,
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Whether `v` can be a watermark: a non-empty string or a number.
pub fn usable(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    }
}

/// Raises `current` to `candidate` when the candidate is usable and larger.
pub fn raise(current: &mut Option<Value>, candidate: Value) {
    if !usable(&candidate) {
        return;
    }
    match current {
        Some(c) if compare(&candidate, c) != Ordering::Greater => {}
        _ => *current = Some(candidate),
    }
}

/// The larger of two optional watermarks.
pub fn max(a: Option<Value>, b: Option<Value>) -> Option<Value> {
    let mut out = a;
    if let Some(b) = b {
        raise(&mut out, b);
    }
    out
}

/// A watermark as a query parameter or formula literal: strings as they are, numbers as written.
pub fn to_param(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn orders_numbers_timestamps_and_text() {
        assert_eq!(compare(&json!(9), &json!(10)), Ordering::Less);
        assert_eq!(compare(&json!(1.5), &json!(1)), Ordering::Greater);
        // Same instant written two ways: equal by time, then by text.
        assert_eq!(compare(&json!("2024-01-01T00:00:10Z"), &json!("2024-01-01T01:00:09+01:00")), Ordering::Greater);
        assert_eq!(compare(&json!("2024-01-01T00:00:00.500Z"), &json!("2024-01-01T00:00:01Z")), Ordering::Less);
        assert_eq!(compare(&json!("b"), &json!("a")), Ordering::Greater);
    }

    #[test]
    fn raise_keeps_the_maximum() {
        let mut w = None;
        raise(&mut w, json!(null));
        assert_eq!(w, None);
        raise(&mut w, json!("2024-01-02T00:00:00Z"));
        raise(&mut w, json!("2024-01-01T00:00:00Z"));
        assert_eq!(w, Some(json!("2024-01-02T00:00:00Z")));
        assert_eq!(max(Some(json!(3)), Some(json!(5))), Some(json!(5)));
        assert_eq!(max(None, Some(json!(""))), None);
        assert_eq!(to_param(&json!("x y")), "x y");
        assert_eq!(to_param(&json!(17)), "17");
    }
}
