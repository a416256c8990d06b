//! Every entry of `tests/vectors/webhooks.json` against the host's webhook verifier: published
//! vectors pass with the clock at their timestamp and fail outside the replay window; schemes
//! described only in prose are signed here with `ring` directly, then verified. An entry this
//! file does not know fails the test, so a new vector cannot be skipped silently.

use patchbay_crypto::webhook::{
    Scheme, Verifier, WebhookError, sign_github, sign_slack, sign_standard_webhooks, sign_stripe,
};
use ring::hmac;
use serde_json::Value;

type Headers = Vec<(String, String)>;

fn vectors() -> serde_json::Map<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/webhooks.json");
    let text = std::fs::read_to_string(path).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(map) => map,
        other => panic!("{path}: expected an object, found {other}"),
    }
}

fn str_field<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry[key].as_str().unwrap_or_else(|| panic!("vector field {key:?} missing in {entry}"))
}

/// An HMAC-SHA256 in hex computed without the host code.
fn independent_hex(key: &[u8], content: &[u8]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), content))
}

/// Passes at `ts`, fails one second past the window either way, and fails with a changed body.
fn check_timestamped(name: &str, verifier: &Verifier, headers: &Headers, body: &[u8], ts: i64) {
    verifier.verify(headers, body, ts).unwrap_or_else(|e| panic!("{name}: {e}"));
    verifier.verify(headers, body, ts + 300).unwrap_or_else(|e| panic!("{name} at +300 s: {e}"));
    for now in [ts + 301, ts - 301] {
        let err = verifier.verify(headers, body, now).unwrap_err();
        assert!(matches!(err, WebhookError::OutsideWindow { tolerance_secs: 300, .. }), "{name} at {now}: {err}");
    }
    let tampered = [body, b" "].concat();
    assert_eq!(verifier.verify(headers, &tampered, ts).unwrap_err(), WebhookError::NoMatch, "{name}");
}

fn standard_webhooks(entries: &[Value]) -> usize {
    for (i, v) in entries.iter().enumerate() {
        let name = format!("standard_webhooks[{i}]");
        let secret = str_field(v, "secret");
        let id = str_field(v, "webhook-id");
        let ts = v["webhook-timestamp"].as_i64().unwrap();
        let body = str_field(v, "body").as_bytes();
        let signature = str_field(v, "webhook-signature");
        let headers: Headers = vec![
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), ts.to_string()),
            ("webhook-signature".into(), signature.into()),
        ];
        let verifier = Verifier::new(Scheme::StandardWebhooks, &[secret]).unwrap();
        check_timestamped(&name, &verifier, &headers, body, ts);
        assert_eq!(verifier.verify(&headers, body, ts).unwrap().webhook_id.as_deref(), Some(id));
        // The signing helper reproduces the published signature (one of them, if several).
        let ours = sign_standard_webhooks(secret, id, ts, body).unwrap();
        assert!(signature.split(' ').any(|s| s == ours), "{name}: signed {ours}, published {signature}");
    }
    entries.len()
}

fn github(entries: &[Value]) -> usize {
    for (i, v) in entries.iter().enumerate() {
        let name = format!("github[{i}]");
        let secret = str_field(v, "secret");
        let body = str_field(v, "body").as_bytes();
        let signature = str_field(v, "x-hub-signature-256");
        let headers: Headers = vec![("X-Hub-Signature-256".into(), signature.into())];
        let verifier = Verifier::new(Scheme::Github, &[secret]).unwrap();
        // No timestamp, so no window: any clock.
        for now in [0, 1_700_000_000, i64::MAX] {
            verifier.verify(&headers, body, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(verifier.verify(&headers, b"tampered", 0).unwrap_err(), WebhookError::NoMatch, "{name}");
        assert_eq!(sign_github(secret, body), signature, "{name}");
    }
    entries.len()
}

const PROSE_SECRET: &str = "whsec_vector_signing_secret";
const PROSE_TS: i64 = 1_649_367_553;
const PROSE_BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","amount":4200}"#;

fn stripe_scheme(description: &str) {
    assert!(description.contains("Stripe-Signature") && description.contains("{t}.{raw body}"), "{description}");
    let tag = independent_hex(PROSE_SECRET.as_bytes(), format!("{PROSE_TS}.{}", as_str(PROSE_BODY)).as_bytes());
    let other = independent_hex(b"another secret", format!("{PROSE_TS}.{}", as_str(PROSE_BODY)).as_bytes());
    let header = format!("t={PROSE_TS},v1={other},v1={tag}");
    let headers: Headers = vec![("Stripe-Signature".into(), header)];
    let verifier = Verifier::new(Scheme::Stripe, &[PROSE_SECRET]).unwrap();
    check_timestamped("stripe_scheme", &verifier, &headers, PROSE_BODY, PROSE_TS);
    assert_eq!(sign_stripe(PROSE_SECRET, PROSE_TS, PROSE_BODY), format!("t={PROSE_TS},v1={tag}"));
}

fn slack_scheme(description: &str) {
    assert!(description.contains("X-Slack-Signature") && description.contains("v0:{ts}:{raw body}"), "{description}");
    let tag = independent_hex(PROSE_SECRET.as_bytes(), format!("v0:{PROSE_TS}:{}", as_str(PROSE_BODY)).as_bytes());
    let headers: Headers = vec![
        ("X-Slack-Request-Timestamp".into(), PROSE_TS.to_string()),
        ("X-Slack-Signature".into(), format!("v0={tag}")),
    ];
    let verifier = Verifier::new(Scheme::Slack, &[PROSE_SECRET]).unwrap();
    check_timestamped("slack_scheme", &verifier, &headers, PROSE_BODY, PROSE_TS);
    assert_eq!(sign_slack(PROSE_SECRET, PROSE_TS, PROSE_BODY), format!("v0={tag}"));
}

fn as_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn every_published_webhook_vector_verifies() {
    let mut checked = Vec::new();
    for (key, value) in vectors() {
        match (key.as_str(), &value) {
            ("_about", _) => continue,
            ("standard_webhooks", Value::Array(entries)) => assert!(standard_webhooks(entries) > 0),
            ("github", Value::Array(entries)) => assert!(github(entries) > 0),
            ("stripe_scheme", Value::String(description)) => stripe_scheme(description),
            ("slack_scheme", Value::String(description)) => slack_scheme(description),
            _ => panic!("webhooks.json entry {key:?} has no test; add one to tests/all/webhook_vectors.rs"),
        }
        checked.push(key);
    }
    assert_eq!(checked.len(), 4, "{checked:?}");
}
