//! Tests for signing, verification, key ids and trusted key lists.

use super::*;
use crate::testutil::{MINIMAL_MANIFEST, component, component_with_manifest, custom};

fn keypair() -> (GeneratedKey, Ed25519KeyPair) {
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    assert_eq!(id, key.key_id);
    (key, pair)
}

fn trusting(keys: &[&GeneratedKey]) -> TrustedKeys {
    let list = keys.iter().map(|k| k.trusted_entry()).collect::<Vec<_>>().join(",");
    TrustedKeys::parse(&list).unwrap()
}

#[test]
fn sign_then_verify_round_trips() {
    let (key, pair) = keypair();
    let unsigned = component_with_manifest(MINIMAL_MANIFEST);
    let signed = sign(&unsigned, &pair, &key.key_id);
    assert!(signed.starts_with(&unsigned));
    assert_eq!(verify(&signed, &trusting(&[&key])), Ok(Some(key.key_id.clone())));
    assert_eq!(verify_required(&signed, &trusting(&[&key])), Ok(key.key_id));
}

#[test]
fn section_holds_the_documented_json() {
    let (key, pair) = keypair();
    let unsigned = component(&[]);
    let signed = sign(&unsigned, &pair, &key.key_id);
    let found = sections::scan(&signed).unwrap();
    assert_eq!(found.signatures.len(), 1);
    assert_eq!(found.signatures[0].range, unsigned.len()..signed.len());
    let json: serde_json::Value = serde_json::from_slice(found.signatures[0].data).unwrap();
    assert_eq!(json["alg"], "ed25519");
    assert_eq!(json["key_id"], key.key_id.as_str());
    let signature = BASE64.decode(json["signature"].as_str().unwrap()).unwrap();
    // The signature is over the SHA-256 of the unsigned bytes.
    let public_key = BASE64.decode(&key.public_key).unwrap();
    let hash = digest(&SHA256, &unsigned);
    assert!(UnparsedPublicKey::new(&ED25519, &public_key).verify(hash.as_ref(), &signature).is_ok());
    assert_eq!(json.as_object().unwrap().len(), 3);
}

#[test]
fn unsigned_is_ok_none_unless_required() {
    let bytes = component_with_manifest(MINIMAL_MANIFEST);
    assert_eq!(verify(&bytes, &TrustedKeys::new()), Ok(None));
    assert_eq!(verify_required(&bytes, &TrustedKeys::new()), Err(SignatureError::Missing));
}

#[test]
fn tampered_bytes_fail_verification() {
    let (key, pair) = keypair();
    let unsigned = component_with_manifest(MINIMAL_MANIFEST);
    let mut signed = sign(&unsigned, &pair, &key.key_id);
    // Flip a byte of the manifest text (still valid wasm, different contents).
    let at = unsigned.len() - 3;
    signed[at] ^= 0x01;
    let err = verify(&signed, &trusting(&[&key])).unwrap_err();
    assert_eq!(err, SignatureError::Invalid(key.key_id.clone()));
    assert!(err.to_string().contains("does not match the component's contents"));
}

#[test]
fn signature_by_an_untrusted_key_is_an_error() {
    let (signer, pair) = keypair();
    let (other, _) = keypair();
    let signed = sign(&component(&[]), &pair, &signer.key_id);
    let err = verify(&signed, &trusting(&[&other])).unwrap_err();
    assert_eq!(err, SignatureError::UnknownKey(signer.key_id.clone()));
    assert_eq!(err.to_string(), format!("signed with key {}, which is not a trusted key", signer.key_id));
    assert!(matches!(verify(&signed, &TrustedKeys::new()), Err(SignatureError::UnknownKey(_))));
}

#[test]
fn signature_claiming_another_trusted_key_id_fails() {
    let (signer, pair) = keypair();
    let (other, _) = keypair();
    let signed = sign(&component(&[]), &pair, &other.key_id);
    let err = verify(&signed, &trusting(&[&signer, &other])).unwrap_err();
    assert_eq!(err, SignatureError::Invalid(other.key_id));
}

#[test]
fn signature_must_be_the_last_section() {
    let (key, pair) = keypair();
    let mut bytes = sign(&component(&[]), &pair, &key.key_id);
    bytes.extend_from_slice(&custom("trailer", b"unsigned"));
    let err = verify(&bytes, &trusting(&[&key])).unwrap_err();
    assert!(matches!(err, SignatureError::NotLast(_)), "{err:?}");
    assert!(err.to_string().contains("bytes follow it"), "{err}");
}

#[test]
fn two_signature_sections_are_rejected() {
    let (key, pair) = keypair();
    let once = sign(&component(&[]), &pair, &key.key_id);
    let mut twice = once.clone();
    twice.extend_from_slice(&once[8..]);
    let err = verify(&twice, &trusting(&[&key])).unwrap_err();
    assert_eq!(err, SignatureError::NotLast("found 2 signature sections".into()));
}

#[test]
fn signing_again_replaces_the_signature() {
    let (first, first_pair) = keypair();
    let (second, second_pair) = keypair();
    let unsigned = component_with_manifest(MINIMAL_MANIFEST);
    let once = sign(&unsigned, &first_pair, &first.key_id);
    let twice = sign(&once, &second_pair, &second.key_id);
    assert_eq!(sections::scan(&twice).unwrap().signatures.len(), 1);
    assert_eq!(verify(&twice, &trusting(&[&second])), Ok(Some(second.key_id)));
    assert_eq!(twice.len(), once.len());
}

#[test]
fn malformed_sections_are_rejected() {
    let (key, _) = keypair();
    let trusted = trusting(&[&key]);
    let with_section = |json: &str| component(&[custom(crate::SIGNATURE_SECTION, json.as_bytes())]);
    let sig64 = BASE64.encode([0u8; 64]);
    let cases = [
        ("not json".to_string(), "malformed"),
        (
            format!(r#"{{"alg":"rsa","key_id":"{}","signature":"{sig64}"}}"#, key.key_id),
            "unsupported signature algorithm",
        ),
        (format!(r#"{{"alg":"ed25519","key_id":"XYZ","signature":"{sig64}"}}"#), "key_id"),
        (format!(r#"{{"alg":"ed25519","key_id":"{}","signature":"!!"}}"#, key.key_id), "not base64"),
        (format!(r#"{{"alg":"ed25519","key_id":"{}","signature":"AAAA"}}"#, key.key_id), "64 bytes"),
        (format!(r#"{{"alg":"ed25519","key_id":"{}","signature":"{sig64}","x":1}}"#, key.key_id), "unknown field"),
    ];
    for (json, needle) in cases {
        let err = verify(&with_section(&json), &trusted).unwrap_err();
        assert!(err.to_string().contains(needle), "{json}: {err}");
    }
    let valid_form = format!(r#"{{"alg":"ed25519","key_id":"{}","signature":"{sig64}"}}"#, key.key_id);
    assert_eq!(verify(&with_section(&valid_form), &trusted), Err(SignatureError::Invalid(key.key_id)));
}

#[test]
fn unreadable_binaries_are_an_error() {
    assert!(matches!(
        verify(b"\0asm\x0d\x00\x01\x00\x00\x05", &TrustedKeys::new()),
        Err(SignatureError::Unreadable(_))
    ));
}

#[test]
fn key_id_is_the_start_of_the_public_key_hash() {
    let (key, pair) = keypair();
    let expected = &hex::encode(digest(&SHA256, pair.public_key().as_ref()))[..16];
    assert_eq!(key.key_id.as_str(), expected);
    assert_eq!(key.key_id.as_str().parse::<KeyId>(), Ok(key.key_id.clone()));
    assert!("ABCDEF0123456789".parse::<KeyId>().is_err());
    assert!("abc".parse::<KeyId>().is_err());
    assert_eq!(serde_json::to_value(&key.key_id).unwrap(), serde_json::json!(expected));
}

#[test]
fn trusted_keys_parse_lists() {
    let (a, _) = keypair();
    let (b, _) = keypair();
    let list = format!(" {} ,\n{}\n", a.trusted_entry(), b.public_key);
    let keys = TrustedKeys::parse(&list).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&a.key_id) && keys.contains(&b.key_id));
    assert!(TrustedKeys::parse("").unwrap().is_empty());
}

#[test]
fn trusted_keys_reject_bad_entries() {
    let (a, _) = keypair();
    let (b, _) = keypair();
    let wrong_id = format!("{}:{}", b.key_id, a.public_key);
    let err = TrustedKeys::parse(&wrong_id).unwrap_err();
    assert!(err.to_string().contains(&format!("does not match the public key, whose id is {}", a.key_id)), "{err}");
    let err = TrustedKeys::parse("0123456789abcdef:not-base64!").unwrap_err();
    assert!(err.to_string().contains("not base64"), "{err}");
    let short = BASE64.encode([1u8; 16]);
    let err = TrustedKeys::parse(&short).unwrap_err();
    assert!(err.to_string().contains("32 bytes, this one is 16"), "{err}");
    assert!(err.to_string().contains(&short), "{err}");
}

#[test]
fn pkcs8_must_be_an_ed25519_key_pair() {
    assert!(matches!(keypair_from_pkcs8(b"nope"), Err(SignatureError::InvalidKeyPair(_))));
}

#[test]
fn generated_key_debug_hides_the_private_key() {
    let (key, _) = keypair();
    let debug = format!("{key:?}");
    assert!(debug.contains("<redacted>") && !debug.contains(&format!("{:?}", key.pkcs8)));
}
