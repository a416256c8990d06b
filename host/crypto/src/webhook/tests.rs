//! Tests for every webhook scheme: valid, tampered, wrong and rotated secrets, several
//! signatures, the replay window with an injected clock, missing and malformed headers, and
//! failing closed without a secret.

use super::*;

const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"type":"order.paid","id":42}"#;

/// Headers as owned pairs; lookups are case-insensitive.
fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn err<T: fmt::Debug>(r: Result<T, WebhookError>) -> WebhookError {
    r.expect_err("expected the request to be rejected")
}

fn independent_hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &parts.concat()))
}

// ---- fail closed and configuration ----

#[test]
fn no_secret_fails_closed_for_every_scheme() {
    let generic = Scheme::Hmac(GenericHmac::new("X-Sig", SignatureEncoding::Hex));
    for scheme in [Scheme::StandardWebhooks, Scheme::Github, Scheme::Stripe, Scheme::Slack, generic] {
        assert_eq!(err(Verifier::new(scheme.clone(), &[] as &[&str])), WebhookError::NoSecret);
        assert_eq!(err(Verifier::new(scheme, &["", "  "])), WebhookError::NoSecret);
    }
    assert_eq!(WebhookError::NoSecret.to_string(), "no secret configured");
    assert!(WebhookError::NoSecret.is_configuration());
}

#[test]
fn undecodable_secrets_are_named_by_position_not_value() {
    let e = err(Verifier::new(Scheme::StandardWebhooks, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!"]));
    assert_eq!(e, WebhookError::BadSecret { index: 2, expected: "whsec_<base64>" });
    assert!(!e.to_string().contains("!!!"));
    let hex_key = GenericHmac { key_encoding: KeyEncoding::Hex, ..GenericHmac::new("X-Sig", SignatureEncoding::Hex) };
    assert_eq!(
        err(Verifier::new(Scheme::Hmac(hex_key), &["xyz"])),
        WebhookError::BadSecret { index: 1, expected: "hex" }
    );
}

#[test]
fn debug_output_hides_keys() {
    let v = Verifier::new(Scheme::Github, &["very-secret-value"]).unwrap();
    let debug = format!("{v:?}");
    assert!(!debug.contains("very-secret-value") && debug.contains("keys: 1"), "{debug}");
}

// ---- standard webhooks ----

/// From standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs `test_sign`.
const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SW_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const SW_TS: i64 = 1_649_367_553;
const SW_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const SW_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

fn sw_headers(sig: &str) -> Vec<(String, String)> {
    h(&[("webhook-id", SW_ID), ("webhook-timestamp", &SW_TS.to_string()), ("webhook-signature", sig)])
}

#[test]
fn standard_webhooks_published_vector() {
    assert_eq!(sign_standard_webhooks(SW_SECRET, SW_ID, SW_TS, SW_BODY).unwrap(), SW_SIG);
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET]).unwrap();
    let ok = v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS).unwrap();
    assert_eq!(ok, Verified { webhook_id: Some(SW_ID.into()), timestamp: Some(SW_TS) });
    assert!(v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS + 300).is_ok());
    assert!(v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS - 300).is_ok());
}

#[test]
fn standard_webhooks_secret_prefix_is_optional() {
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET.trim_start_matches("whsec_")]).unwrap();
    assert!(v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS).is_ok());
}

#[test]
fn standard_webhooks_rejects_stale_and_future_timestamps() {
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET]).unwrap();
    let stale = err(v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS + 301));
    assert_eq!(stale, WebhookError::OutsideWindow { tolerance_secs: 300, skew_secs: 301 });
    assert_eq!(stale.to_string(), "timestamp outside the ±300 s window (signed 301 s ago)");
    let future = err(v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS - 301));
    assert_eq!(future.to_string(), "timestamp outside the ±300 s window (signed 301 s in the future)");
}

#[test]
fn standard_webhooks_rejects_tampering_and_wrong_secrets() {
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET]).unwrap();
    assert_eq!(err(v.verify(&sw_headers(SW_SIG), b"{\"email\":\"x\"}", SW_TS)), WebhookError::NoMatch);
    // One byte of whitespace is a different body: nothing is re-serialized.
    let spaced = [SW_BODY, b" "].concat();
    assert_eq!(err(v.verify(&sw_headers(SW_SIG), &spaced, SW_TS)), WebhookError::NoMatch);
    let mut other_id = sw_headers(SW_SIG);
    other_id[0].1 = "msg_other".into();
    assert_eq!(err(v.verify(&other_id, SW_BODY, SW_TS)), WebhookError::NoMatch);
    let wrong = Verifier::new(Scheme::StandardWebhooks, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap();
    let e = err(wrong.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS));
    assert_eq!(e.to_string(), "no signature matched");
}

#[test]
fn standard_webhooks_accepts_any_of_several_signatures_and_ignores_unknown_versions() {
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET]).unwrap();
    let several = format!("v1,Ym9ndXM= v2,somethingelse v1,!!notbase64 {SW_SIG}");
    assert!(v.verify(&sw_headers(&several), SW_BODY, SW_TS).is_ok());
    let unknown_only = sw_headers("v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    assert_eq!(err(v.verify(&unknown_only, SW_BODY, SW_TS)), WebhookError::NoMatch);
}

#[test]
fn standard_webhooks_rotation_accepts_old_and_new_secrets() {
    let new_secret = new_standard_webhooks_secret().unwrap();
    assert!(new_secret.starts_with("whsec_"));
    let v = Verifier::new(Scheme::StandardWebhooks, &[new_secret.as_str(), SW_SECRET]).unwrap();
    assert!(v.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS).is_ok());
    let by_new = sign_standard_webhooks(&new_secret, SW_ID, SW_TS, SW_BODY).unwrap();
    assert!(v.verify(&sw_headers(&by_new), SW_BODY, SW_TS).is_ok());
    // A sender in the middle of a rotation signs with both.
    assert!(v.verify(&sw_headers(&format!("{by_new} {SW_SIG}")), SW_BODY, SW_TS).is_ok());
    let only_new = Verifier::new(Scheme::StandardWebhooks, &[new_secret]).unwrap();
    assert_eq!(err(only_new.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS)), WebhookError::NoMatch);
}

#[test]
fn standard_webhooks_missing_and_malformed_headers() {
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET]).unwrap();
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let headers: Vec<_> = sw_headers(SW_SIG).into_iter().filter(|(n, _)| n != missing).collect();
        let e = err(v.verify(&headers, SW_BODY, SW_TS));
        assert_eq!(e, WebhookError::MissingHeader(missing.into()));
        assert_eq!(e.to_string(), format!("missing header {missing}"));
    }
    let e = err(v.verify(&sw_headers("garbage"), SW_BODY, SW_TS));
    assert!(matches!(e, WebhookError::MalformedSignature { .. }), "{e}");
    assert!(e.to_string().starts_with("malformed signature header webhook-signature"), "{e}");
    for bad_ts in ["", "12a", "-5", "+1649367553", "1649367553.5", "99999999999999999999"] {
        let mut headers = sw_headers(SW_SIG);
        headers[1].1 = bad_ts.into();
        let e = err(v.verify(&headers, SW_BODY, SW_TS));
        assert!(
            matches!(&e, WebhookError::MalformedHeader { header, .. } if header == "webhook-timestamp"),
            "{bad_ts:?}: {e}"
        );
    }
    let mut two_ids = sw_headers(SW_SIG);
    two_ids.push(("webhook-id".into(), "msg_other".into()));
    assert!(matches!(err(v.verify(&two_ids, SW_BODY, SW_TS)), WebhookError::MalformedHeader { .. }));
}

#[test]
fn header_names_are_case_insensitive_and_repeated_headers_all_count() {
    let v = Verifier::new(Scheme::StandardWebhooks, &[SW_SECRET]).unwrap();
    let mixed = h(&[("Webhook-Id", SW_ID), ("WEBHOOK-TIMESTAMP", "1649367553"), ("Webhook-Signature", SW_SIG)]);
    assert!(v.verify(&mixed, SW_BODY, SW_TS).is_ok());

    let mut map = http::HeaderMap::new();
    map.insert("Webhook-ID", http::HeaderValue::from_static(SW_ID));
    map.insert("webhook-timestamp", http::HeaderValue::from_static("1649367553"));
    map.append("webhook-signature", http::HeaderValue::from_static("v1,Ym9ndXM="));
    map.append("Webhook-Signature", http::HeaderValue::from_static(SW_SIG));
    assert!(v.verify(&map, SW_BODY, SW_TS).is_ok());
}

// ---- github ----

const GH_SECRET: &str = "It's a Secret to Everybody";
const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn github_published_vector_has_no_window() {
    assert_eq!(sign_github(GH_SECRET, b"Hello, World!"), GH_SIG);
    let v = Verifier::new(Scheme::Github, &[GH_SECRET]).unwrap();
    for now in [0, NOW, i64::MAX] {
        let ok = v.verify(&h(&[("x-hub-signature-256", GH_SIG)]), b"Hello, World!", now).unwrap();
        assert_eq!(ok, Verified { webhook_id: None, timestamp: None });
    }
    assert!(v.verify(&h(&[("X-HUB-SIGNATURE-256", GH_SIG)]), b"Hello, World!", NOW).is_ok());
}

#[test]
fn github_rejects_tampering_wrong_secret_and_bad_headers() {
    let v = Verifier::new(Scheme::Github, &[GH_SECRET]).unwrap();
    let headers = h(&[("X-Hub-Signature-256", GH_SIG)]);
    assert_eq!(err(v.verify(&headers, b"Hello, World?", NOW)), WebhookError::NoMatch);
    let wrong = Verifier::new(Scheme::Github, &["another secret"]).unwrap();
    assert_eq!(err(wrong.verify(&headers, b"Hello, World!", NOW)), WebhookError::NoMatch);
    // The SHA-1 header alone is not accepted.
    let sha1 = h(&[("X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59")]);
    assert_eq!(err(v.verify(&sha1, b"Hello, World!", NOW)), WebhookError::MissingHeader("X-Hub-Signature-256".into()));
    for bad in ["757107ea", "sha1=757107ea", "sha256=zz", "sha256="] {
        let e = err(v.verify(&h(&[("X-Hub-Signature-256", bad)]), b"Hello, World!", NOW));
        assert!(matches!(e, WebhookError::MalformedSignature { .. }), "{bad:?}: {e}");
    }
    // A truncated tag is well-formed hex but does not match.
    let short = &GH_SIG[..GH_SIG.len() - 2];
    assert_eq!(err(v.verify(&h(&[("X-Hub-Signature-256", short)]), b"Hello, World!", NOW)), WebhookError::NoMatch);
}

#[test]
fn github_rotation_and_repeated_headers() {
    let v = Verifier::new(Scheme::Github, &["new secret", GH_SECRET]).unwrap();
    assert!(v.verify(&h(&[("X-Hub-Signature-256", GH_SIG)]), b"Hello, World!", NOW).is_ok());
    let by_new = sign_github("new secret", b"Hello, World!");
    assert!(v.verify(&h(&[("X-Hub-Signature-256", &by_new)]), b"Hello, World!", NOW).is_ok());
    let only_old = Verifier::new(Scheme::Github, &[GH_SECRET]).unwrap();
    let twice = h(&[("X-Hub-Signature-256", &by_new), ("x-hub-signature-256", GH_SIG)]);
    assert!(only_old.verify(&twice, b"Hello, World!", NOW).is_ok());
}

// ---- stripe ----

const STRIPE_SECRET: &str = "whsec_test_secret";

#[test]
fn stripe_signature_matches_an_independent_computation() {
    let expected = independent_hmac_hex(STRIPE_SECRET.as_bytes(), &[b"1700000000.", BODY]);
    assert_eq!(sign_stripe(STRIPE_SECRET, NOW, BODY), format!("t=1700000000,v1={expected}"));
    let v = Verifier::new(Scheme::Stripe, &[STRIPE_SECRET]).unwrap();
    let header = h(&[("Stripe-Signature", &format!("t={NOW},v1={expected}"))]);
    assert_eq!(v.verify(&header, BODY, NOW).unwrap(), Verified { webhook_id: None, timestamp: Some(NOW) });
}

#[test]
fn stripe_several_v1_signatures_and_rotation() {
    let v = Verifier::new(Scheme::Stripe, &["whsec_old", "whsec_new"]).unwrap();
    let new_tag = sign_stripe("whsec_new", NOW, BODY);
    let new_tag = new_tag.split_once(",v1=").unwrap().1;
    let unknown = sign_stripe("whsec_unknown", NOW, BODY);
    let unknown = unknown.split_once(",v1=").unwrap().1;
    let header = format!("t={NOW}, v1={unknown}, v0=abc, v1=nothex, v1={new_tag}");
    assert!(v.verify(&h(&[("stripe-signature", &header)]), BODY, NOW).is_ok());
    assert!(v.verify(&h(&[("stripe-signature", &sign_stripe("whsec_old", NOW, BODY))]), BODY, NOW).is_ok());
    let only_unknown = format!("t={NOW},v1={unknown}");
    assert_eq!(err(v.verify(&h(&[("stripe-signature", &only_unknown)]), BODY, NOW)), WebhookError::NoMatch);
}

#[test]
fn stripe_window_tampering_and_malformed_headers() {
    let v = Verifier::new(Scheme::Stripe, &[STRIPE_SECRET]).unwrap();
    let signed = h(&[("Stripe-Signature", &sign_stripe(STRIPE_SECRET, NOW, BODY))]);
    assert!(v.verify(&signed, BODY, NOW + 300).is_ok());
    assert!(matches!(err(v.verify(&signed, BODY, NOW + 301)), WebhookError::OutsideWindow { skew_secs: 301, .. }));
    assert!(matches!(err(v.verify(&signed, BODY, NOW - 301)), WebhookError::OutsideWindow { skew_secs: -301, .. }));
    let strict = v.clone().with_tolerance(10);
    assert_eq!(strict.tolerance_secs(), 10);
    assert!(matches!(
        err(strict.verify(&signed, BODY, NOW + 11)),
        WebhookError::OutsideWindow { tolerance_secs: 10, .. }
    ));
    assert_eq!(err(v.verify(&signed, b"{}", NOW)), WebhookError::NoMatch);
    // The timestamp is signed: moving it breaks the signature.
    let moved = sign_stripe(STRIPE_SECRET, NOW, BODY).replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
    assert_eq!(err(v.verify(&h(&[("Stripe-Signature", &moved)]), BODY, NOW)), WebhookError::NoMatch);
    let wrong = Verifier::new(Scheme::Stripe, &["whsec_other"]).unwrap();
    assert_eq!(err(wrong.verify(&signed, BODY, NOW)), WebhookError::NoMatch);
    assert_eq!(err(v.verify(&h(&[]), BODY, NOW)), WebhookError::MissingHeader("Stripe-Signature".into()));
    for bad in ["v1=abcd", "t=abc,v1=abcd", "garbage", "t=1,t=2,v1=ab"] {
        let e = err(v.verify(&h(&[("Stripe-Signature", bad)]), BODY, NOW));
        assert!(matches!(e, WebhookError::MalformedSignature { .. }), "{bad:?}: {e}");
    }
}

// ---- slack ----

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn slack_headers(ts: i64, sig: &str) -> Vec<(String, String)> {
    h(&[("X-Slack-Request-Timestamp", &ts.to_string()), ("X-Slack-Signature", sig)])
}

#[test]
fn slack_signature_matches_an_independent_computation() {
    let expected = independent_hmac_hex(SLACK_SECRET.as_bytes(), &[b"v0:1700000000:", BODY]);
    assert_eq!(sign_slack(SLACK_SECRET, NOW, BODY), format!("v0={expected}"));
    let v = Verifier::new(Scheme::Slack, &[SLACK_SECRET]).unwrap();
    let ok = v.verify(&slack_headers(NOW, &format!("v0={expected}")), BODY, NOW).unwrap();
    assert_eq!(ok.timestamp, Some(NOW));
}

#[test]
fn slack_window_tampering_rotation_and_bad_headers() {
    let v = Verifier::new(Scheme::Slack, &["old", SLACK_SECRET]).unwrap();
    let sig = sign_slack(SLACK_SECRET, NOW, BODY);
    assert!(v.verify(&slack_headers(NOW, &sig), BODY, NOW - 300).is_ok());
    assert!(v.verify(&slack_headers(NOW, &sign_slack("old", NOW, BODY)), BODY, NOW).is_ok());
    assert!(matches!(err(v.verify(&slack_headers(NOW, &sig), BODY, NOW + 301)), WebhookError::OutsideWindow { .. }));
    assert!(matches!(err(v.verify(&slack_headers(NOW, &sig), BODY, NOW - 301)), WebhookError::OutsideWindow { .. }));
    assert_eq!(err(v.verify(&slack_headers(NOW + 1, &sig), BODY, NOW)), WebhookError::NoMatch);
    assert_eq!(err(v.verify(&slack_headers(NOW, &sig), b"token=x", NOW)), WebhookError::NoMatch);
    let no_ts = h(&[("x-slack-signature", &sig)]);
    assert_eq!(err(v.verify(&no_ts, BODY, NOW)), WebhookError::MissingHeader("X-Slack-Request-Timestamp".into()));
    let e = err(v.verify(&slack_headers(NOW, &sig.replace("v0=", "v1=")), BODY, NOW));
    assert!(matches!(e, WebhookError::MalformedSignature { .. }), "{e}");
}

// ---- generic hmac ----

/// Base64 signatures prefixed `v1=`, space-separated, over `{timestamp}.{header:X-Id}.{body}`,
/// with a base64 key.
fn generic() -> GenericHmac {
    GenericHmac {
        prefix: "v1=".into(),
        signed_content: SignedContent::parse("{timestamp}.{header:X-Id}.{body}").unwrap(),
        key_encoding: KeyEncoding::Base64,
        timestamp_header: Some("X-Ts".into()),
        separator: Some(" ".into()),
        ..GenericHmac::new("X-Sig", SignatureEncoding::Base64)
    }
}

const GENERIC_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn generic_secret() -> String {
    base64::engine::general_purpose::STANDARD.encode(GENERIC_KEY)
}

fn generic_headers(ts: i64, id: &str, sig: &str) -> Vec<(String, String)> {
    h(&[("x-ts", &ts.to_string()), ("X-ID", id), ("x-sig", sig)])
}

#[test]
fn generic_hmac_matches_an_independent_computation() {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, GENERIC_KEY), &[b"1700000000.evt_1.", BODY].concat());
    let expected = format!("v1={}", base64::engine::general_purpose::STANDARD.encode(tag));
    let g = generic();
    assert_eq!(g.sign(&generic_secret(), &generic_headers(NOW, "evt_1", ""), BODY).unwrap(), expected);
    let v = Verifier::new(Scheme::Hmac(g), &[generic_secret()]).unwrap();
    let ok = v.verify(&generic_headers(NOW, "evt_1", &expected), BODY, NOW).unwrap();
    assert_eq!(ok.timestamp, Some(NOW));
    // Padding is optional.
    let unpadded = expected.trim_end_matches('=');
    assert!(v.verify(&generic_headers(NOW, "evt_1", unpadded), BODY, NOW).is_ok());
}

#[test]
fn generic_hmac_several_signatures_rotation_and_tampering() {
    let g = generic();
    let old = base64::engine::general_purpose::STANDARD.encode(b"old key bytes");
    let v = Verifier::new(Scheme::Hmac(g.clone()), &[generic_secret(), old.clone()]).unwrap();
    let by_old = g.sign(&old, &generic_headers(NOW, "evt_1", ""), BODY).unwrap();
    let by_current = g.sign(&generic_secret(), &generic_headers(NOW, "evt_1", ""), BODY).unwrap();
    assert!(v.verify(&generic_headers(NOW, "evt_1", &format!("v2=abc {by_old}")), BODY, NOW).is_ok());
    assert!(v.verify(&generic_headers(NOW, "evt_1", &format!("{by_current} {by_old}")), BODY, NOW).is_ok());
    assert_eq!(err(v.verify(&generic_headers(NOW, "evt_2", &by_old), BODY, NOW)), WebhookError::NoMatch);
    assert_eq!(err(v.verify(&generic_headers(NOW, "evt_1", &by_old), b"{}", NOW)), WebhookError::NoMatch);
    assert_eq!(err(v.verify(&generic_headers(NOW + 1, "evt_1", &by_old), BODY, NOW)), WebhookError::NoMatch);
    let other = Verifier::new(Scheme::Hmac(g), &[base64::engine::general_purpose::STANDARD.encode(b"x")]).unwrap();
    assert_eq!(err(other.verify(&generic_headers(NOW, "evt_1", &by_old), BODY, NOW)), WebhookError::NoMatch);
}

#[test]
fn generic_hmac_window_and_bad_headers() {
    let g = generic();
    let v = Verifier::new(Scheme::Hmac(g.clone()), &[generic_secret()]).unwrap().with_tolerance(60);
    let sig = g.sign(&generic_secret(), &generic_headers(NOW, "evt_1", ""), BODY).unwrap();
    assert!(v.verify(&generic_headers(NOW, "evt_1", &sig), BODY, NOW + 60).is_ok());
    let e = err(v.verify(&generic_headers(NOW, "evt_1", &sig), BODY, NOW + 61));
    assert_eq!(e.to_string(), "timestamp outside the ±60 s window (signed 61 s ago)");
    let no_id: Vec<_> = generic_headers(NOW, "evt_1", &sig).into_iter().filter(|(n, _)| n != "X-ID").collect();
    assert_eq!(err(v.verify(&no_id, BODY, NOW)), WebhookError::MissingHeader("X-Id".into()));
    let e = err(v.verify(&generic_headers(NOW, "evt_1", "sha256=abc"), BODY, NOW));
    assert!(matches!(e, WebhookError::MalformedSignature { .. }), "{e}");
    let mut bad_ts = generic_headers(NOW, "evt_1", &sig);
    bad_ts[0].1 = "yesterday".into();
    assert!(matches!(err(v.verify(&bad_ts, BODY, NOW)), WebhookError::MalformedHeader { .. }));
}

#[test]
fn generic_hmac_body_only_hex_with_hex_key() {
    let g = GenericHmac { key_encoding: KeyEncoding::Hex, ..GenericHmac::new("X-Signature", SignatureEncoding::Hex) };
    let secret = hex::encode(GENERIC_KEY);
    let v = Verifier::new(Scheme::Hmac(g), &[&secret]).unwrap();
    let sig = independent_hmac_hex(GENERIC_KEY, &[BODY]);
    let ok = v.verify(&h(&[("x-signature", &sig.to_uppercase())]), BODY, NOW).unwrap();
    assert_eq!(ok, Verified { webhook_id: None, timestamp: None });
    assert_eq!(err(v.verify(&h(&[("x-signature", &sig)]), b"other", NOW)), WebhookError::NoMatch);
}

#[test]
fn generic_hmac_configuration_is_checked() {
    let ts_without_header = GenericHmac {
        signed_content: SignedContent::parse("{timestamp}.{body}").unwrap(),
        ..GenericHmac::new("X-Sig", SignatureEncoding::Hex)
    };
    let e = err(Verifier::new(Scheme::Hmac(ts_without_header), &["s"]));
    assert!(matches!(e, WebhookError::Config(_)) && e.is_configuration(), "{e}");
    let empty_sep = GenericHmac { separator: Some(String::new()), ..GenericHmac::new("X-Sig", SignatureEncoding::Hex) };
    assert!(matches!(err(Verifier::new(Scheme::Hmac(empty_sep), &["s"])), WebhookError::Config(_)));
}

// ---- from a manifest ----

fn spec(table: &str) -> WebhookSpec {
    let text = format!(
        "id = \"acme\"\ntitle = \"Acme\"\ndescription = \"d\"\ncategory = \"webhook-endpoint\"\nprovider = \"Acme\"\n\
         version = \"1.0.0\"\n[[credentials]]\nkey = \"signing\"\nlabel = \"Signing\"\ntype = \"secret\"\n\
         [webhook]\nsecret = \"signing\"\n{table}"
    );
    patchbay_registry::Manifest::parse_toml(&text).unwrap().webhook.unwrap()
}

#[test]
fn from_spec_builds_each_scheme() {
    let sw = Verifier::from_spec(&spec("scheme = \"standard-webhooks\"\ntolerance_secs = 60\n"), &[SW_SECRET]).unwrap();
    assert_eq!((sw.scheme(), sw.tolerance_secs()), (&Scheme::StandardWebhooks, 60));
    assert!(sw.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS + 60).is_ok());
    assert!(sw.verify(&sw_headers(SW_SIG), SW_BODY, SW_TS + 61).is_err());

    let gh = Verifier::from_spec(&spec("scheme = \"github\"\n"), &[GH_SECRET]).unwrap();
    assert!(gh.verify(&h(&[("X-Hub-Signature-256", GH_SIG)]), b"Hello, World!", NOW).is_ok());

    let stripe = Verifier::from_spec(&spec("scheme = \"stripe\"\n"), &[STRIPE_SECRET]).unwrap();
    assert_eq!(stripe.tolerance_secs(), DEFAULT_TOLERANCE_SECS);
    assert!(stripe.verify(&h(&[("stripe-signature", &sign_stripe(STRIPE_SECRET, NOW, BODY))]), BODY, NOW).is_ok());

    let slack = Verifier::from_spec(&spec("scheme = \"slack\"\n"), &[SLACK_SECRET]).unwrap();
    assert!(slack.verify(&slack_headers(NOW, &sign_slack(SLACK_SECRET, NOW, BODY)), BODY, NOW).is_ok());

    let table = "scheme = \"hmac\"\nheader = \"X-Sig\"\nprefix = \"v1=\"\nencoding = \"base64\"\nseparator = \" \"\n\
                 key_encoding = \"base64\"\ntimestamp_header = \"X-Ts\"\n\
                 signed_content = \"{timestamp}.{header:X-Id}.{body}\"\n";
    let g = Verifier::from_spec(&spec(table), &[generic_secret()]).unwrap();
    assert_eq!(g.scheme(), &Scheme::Hmac(generic()));
    let sig = generic().sign(&generic_secret(), &generic_headers(NOW, "evt_1", ""), BODY).unwrap();
    assert!(g.verify(&generic_headers(NOW, "evt_1", &sig), BODY, NOW).is_ok());
}

#[test]
fn from_spec_fails_closed_without_secret() {
    let spec = spec("scheme = \"github\"\n");
    assert_eq!(err(Verifier::from_spec(&spec, &[] as &[String])), WebhookError::NoSecret);
    assert_eq!(err(Verifier::from_spec(&spec, &[""])), WebhookError::NoSecret);
}

/// The github reference connector still declares `hmac-sha256`; it verifies GitHub deliveries.
#[test]
fn legacy_hmac_sha256_manifest_verifies_github_deliveries() {
    let text = include_str!("../../../../connectors-wasm/github/connector.toml");
    let spec = patchbay_registry::Manifest::parse_toml(text).unwrap().webhook.unwrap();
    assert_eq!(spec.scheme, WebhookScheme::HmacSha256);
    let v = Verifier::from_spec(&spec, &[GH_SECRET]).unwrap();
    assert!(v.verify(&h(&[("x-hub-signature-256", GH_SIG)]), b"Hello, World!", NOW).is_ok());
    assert_eq!(err(v.verify(&h(&[("x-hub-signature-256", GH_SIG)]), b"Hello", NOW)), WebhookError::NoMatch);
}

#[test]
fn error_messages_never_contain_secrets_or_header_values() {
    let secret = "s3cr3t-value";
    let v = Verifier::new(Scheme::Stripe, &[secret]).unwrap();
    let forged = "t=1700000000,v1=deadbeefcafe";
    let errors = [
        err(v.verify(&h(&[("Stripe-Signature", forged)]), BODY, NOW)),
        err(v.verify(&h(&[("Stripe-Signature", "t=xyz-injected,v1=ab")]), BODY, NOW)),
        err(v.verify(&h(&[("Stripe-Signature", &sign_stripe(secret, NOW, BODY))]), BODY, NOW + 1000)),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.contains(secret) && !text.contains("deadbeef") && !text.contains("injected"), "{text}");
    }
}
