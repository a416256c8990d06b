//! The registry on the real built components: manifests embedded by the guest SDK survive the
//! wasm32-wasip2 build, and signatures round-trip.

use patchbay_registry::{
    Category, PackageLimits, TrustedKeys, generate_keypair, inspect, keypair_from_pkcs8, sign, verify,
};
use patchbay_tests::components;

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn reference_connectors_carry_valid_manifests() {
    let limits = PackageLimits::default();
    let notify = inspect(&read(components::NOTIFY_WEBHOOK), &limits).unwrap();
    assert_eq!(notify.manifest.id, "notify-webhook");
    assert_eq!(notify.manifest.category, Category::NotificationProvider);
    assert_eq!(notify.manifest.allowed_hosts, vec!["{{config.webhook_url}}".to_string()]);
    let github = inspect(&read(components::GITHUB), &limits).unwrap();
    assert_eq!(github.manifest.category, Category::WebhookEndpoint);
    assert!(github.manifest.webhook.is_some());
    let v2 = inspect(&read(components::NOTIFY_WEBHOOK_V2), &limits).unwrap();
    assert_eq!((v2.manifest.id.as_str(), v2.manifest.version.as_str()), ("notify-webhook", "0.2.0"));
    assert_ne!(v2.digest, notify.digest);
    // Test guests carry no manifest and cannot be published as they are.
    let err = inspect(&read(components::TRIVIAL), &limits).unwrap_err();
    assert_eq!(err.code(), "missing_manifest");
}

#[test]
fn signed_components_verify_only_with_the_trusted_key() {
    let wasm = read(components::NOTIFY_WEBHOOK);
    let key = generate_keypair().unwrap();
    let (pair, id) = keypair_from_pkcs8(&key.pkcs8).unwrap();
    let signed = sign(&wasm, &pair, &id);
    let trusted = TrustedKeys::parse(&key.trusted_entry()).unwrap();
    assert_eq!(verify(&signed, &trusted).unwrap(), Some(id));
    assert_eq!(verify(&wasm, &trusted).unwrap(), None);
    let stranger = TrustedKeys::parse(&generate_keypair().unwrap().trusted_entry()).unwrap();
    assert!(verify(&signed, &stranger).is_err());
    let mut tampered = signed.clone();
    tampered[100] ^= 1;
    assert!(verify(&tampered, &trusted).is_err());
    // The signed component is still a valid package.
    assert!(inspect(&signed, &PackageLimits::default()).is_ok());
}
