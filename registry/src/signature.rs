//! Publisher signatures: ed25519 over the SHA-256 of a component, carried in a trailing
//! `patchbay:signature` custom section; trusted key lists and key generation.
//!
//! Signing appends one top-level custom section named [`SIGNATURE_SECTION`] whose contents are
//! the JSON `{"alg":"ed25519","key_id":"<16 hex>","signature":"<base64>"}`. The signature is the
//! ed25519 signature of the 32-byte SHA-256 digest of every byte before that section, so the
//! section must be the last one: anything appended after it would be unsigned.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::SIGNATURE_SECTION;
use crate::sections::{self, SignatureSection};

/// The only signature algorithm.
pub const ALG_ED25519: &str = "ed25519";

/// Identifies a publisher key: the first 16 hex characters of the SHA-256 of its 32-byte
/// ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The id of a raw ed25519 public key.
    pub fn of(public_key: &[u8]) -> KeyId {
        let hash = hex::encode(digest(&SHA256, public_key));
        KeyId(hash[..16].to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 16 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            Ok(KeyId(s.to_string()))
        } else {
            Err(format!("{s:?} is not a key id (16 lowercase hex characters)"))
        }
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

/// A well-formed signature section found by [`inspect`](crate::inspect); not yet checked
/// against any key (that is [`verify`]'s job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureInfo {
    pub alg: String,
    pub key_id: KeyId,
    /// Number of leading bytes the signature covers (everything before the section).
    pub signed_len: usize,
}

/// Why a signature, a key or a key list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The binary cannot be parsed far enough to find its sections.
    #[error("cannot read the component's sections: {0}")]
    Unreadable(String),
    /// The section's JSON is not `{"alg","key_id","signature"}` with valid values.
    #[error("malformed patchbay:signature section: {0}")]
    Malformed(String),
    /// More than one signature section, or bytes after it.
    #[error("the patchbay:signature section must be the last section and appear once: {0}")]
    NotLast(String),
    #[error("unsupported signature algorithm {0:?}; only \"ed25519\" is supported")]
    UnsupportedAlgorithm(String),
    /// Signed with a key that is not in the trusted list.
    #[error("signed with key {0}, which is not a trusted key")]
    UnknownKey(KeyId),
    /// The signature does not match the bytes (tampered, or signed with another key).
    #[error("the signature by key {0} does not match the component's contents")]
    Invalid(KeyId),
    /// No signature, where one is required.
    #[error("the component is not signed; a signature by a trusted key is required")]
    Missing,
    /// An entry of a trusted key list is unusable.
    #[error("invalid trusted key {entry:?}: {reason}")]
    InvalidTrustedKey { entry: String, reason: String },
    /// A PKCS#8 document that is not an ed25519 key pair.
    #[error("invalid ed25519 key pair: {0}")]
    InvalidKeyPair(String),
    /// The system random number generator failed.
    #[error("cannot generate a key pair: the system random number generator failed")]
    Random,
}

/// The section's JSON contents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureJson {
    alg: String,
    key_id: String,
    signature: String,
}

/// A decoded, well-placed signature section.
struct Parsed {
    info: SignatureInfo,
    signature: Vec<u8>,
}

/// Finds and decodes the signature section; `Ok(None)` when the binary is unsigned.
fn parse(bytes: &[u8]) -> Result<Option<Parsed>, SignatureError> {
    let sections = sections::scan(bytes).map_err(|e| SignatureError::Unreadable(e.to_string()))?;
    parse_section(bytes.len(), &sections.signatures)
}

/// Checks count and position of the top-level signature sections and decodes the last one.
fn parse_section(len: usize, found: &[SignatureSection<'_>]) -> Result<Option<Parsed>, SignatureError> {
    let Some(section) = found.last() else { return Ok(None) };
    if found.len() > 1 {
        return Err(SignatureError::NotLast(format!("found {} signature sections", found.len())));
    }
    if section.range.end != len {
        return Err(SignatureError::NotLast(format!(
            "{} bytes follow it, which the signature does not cover",
            len - section.range.end
        )));
    }
    let json: SignatureJson =
        serde_json::from_slice(section.data).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if json.alg != ALG_ED25519 {
        return Err(SignatureError::UnsupportedAlgorithm(json.alg));
    }
    let key_id: KeyId = json.key_id.parse().map_err(|e| SignatureError::Malformed(format!("key_id: {e}")))?;
    let signature = BASE64
        .decode(json.signature.as_bytes())
        .map_err(|e| SignatureError::Malformed(format!("signature is not base64: {e}")))?;
    if signature.len() != 64 {
        return Err(SignatureError::Malformed(format!(
            "an ed25519 signature is 64 bytes, this one is {}",
            signature.len()
        )));
    }
    Ok(Some(Parsed { info: SignatureInfo { alg: json.alg, key_id, signed_len: section.range.start }, signature }))
}

/// The signature section of `bytes`, checked for form and position but not against any key.
pub(crate) fn info(found: &[SignatureSection<'_>], len: usize) -> Result<Option<SignatureInfo>, SignatureError> {
    Ok(parse_section(len, found)?.map(|p| p.info))
}

/// Public keys of trusted publishers, by [`KeyId`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, Vec<u8>>,
}

impl TrustedKeys {
    /// An empty list (trusts nobody).
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Parses a list of `key_id:base64(public key)` entries separated by commas or whitespace
    /// (the `key_id:` part may be left out; when present it must match the key).
    pub fn parse(list: &str) -> Result<TrustedKeys, SignatureError> {
        let mut keys = TrustedKeys::new();
        for entry in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()) {
            let invalid = |reason: String| SignatureError::InvalidTrustedKey { entry: entry.to_string(), reason };
            let (claimed, b64) = match entry.split_once(':') {
                Some((id, key)) => (Some(id), key),
                None => (None, entry),
            };
            let public_key = BASE64.decode(b64).map_err(|e| invalid(format!("the public key is not base64: {e}")))?;
            let id = keys.add(&public_key).map_err(|e| match e {
                SignatureError::InvalidTrustedKey { reason, .. } => invalid(reason),
                other => other,
            })?;
            if let Some(claimed) = claimed
                && claimed != id.as_str()
            {
                return Err(invalid(format!("the key id does not match the public key, whose id is {id}")));
            }
        }
        Ok(keys)
    }

    /// Adds a raw 32-byte ed25519 public key and returns its id.
    pub fn add(&mut self, public_key: &[u8]) -> Result<KeyId, SignatureError> {
        if public_key.len() != 32 {
            return Err(SignatureError::InvalidTrustedKey {
                entry: BASE64.encode(public_key),
                reason: format!("an ed25519 public key is 32 bytes, this one is {}", public_key.len()),
            });
        }
        let id = KeyId::of(public_key);
        self.keys.insert(id.clone(), public_key.to_vec());
        Ok(id)
    }

    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The ids, in sorted order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }
}

/// Encodes one custom section: id 0, size, name, contents.
pub(crate) fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + data.len() + 5);
    leb128(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(0);
    leb128(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

pub(crate) fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Signs a component: returns `bytes` with a `patchbay:signature` section appended, signing the
/// SHA-256 of everything before it. An existing trailing signature section is replaced.
pub fn sign(bytes: &[u8], key: &Ed25519KeyPair, key_id: &KeyId) -> Vec<u8> {
    let unsigned = match sections::scan(bytes) {
        Ok(found) => match found.signatures.last() {
            Some(last) if last.range.end == bytes.len() => &bytes[..last.range.start],
            _ => bytes,
        },
        Err(_) => bytes,
    };
    let hash = digest(&SHA256, unsigned);
    let json = serde_json::json!({
        "alg": ALG_ED25519,
        "key_id": key_id.as_str(),
        "signature": BASE64.encode(key.sign(hash.as_ref()).as_ref()),
    });
    let mut out = unsigned.to_vec();
    out.extend_from_slice(&custom_section(SIGNATURE_SECTION, json.to_string().as_bytes()));
    out
}

/// Verifies the signature of `bytes` against the trusted keys: `Ok(Some(key))` for a valid
/// signature by a trusted key, `Ok(None)` for an unsigned binary, an error for anything else
/// (malformed or misplaced section, unknown key, mismatch).
pub fn verify(bytes: &[u8], trusted: &TrustedKeys) -> Result<Option<KeyId>, SignatureError> {
    let Some(parsed) = parse(bytes)? else { return Ok(None) };
    let key_id = parsed.info.key_id;
    let public_key = trusted.keys.get(&key_id).ok_or_else(|| SignatureError::UnknownKey(key_id.clone()))?;
    let hash = digest(&SHA256, &bytes[..parsed.info.signed_len]);
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(hash.as_ref(), &parsed.signature)
        .map_err(|_| SignatureError::Invalid(key_id.clone()))?;
    Ok(Some(key_id))
}

/// Like [`verify`], but an unsigned binary is [`SignatureError::Missing`].
pub fn verify_required(bytes: &[u8], trusted: &TrustedKeys) -> Result<KeyId, SignatureError> {
    verify(bytes, trusted)?.ok_or(SignatureError::Missing)
}

/// A freshly generated publisher key.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The key pair as a PKCS#8 v2 document; keep it secret.
    pub pkcs8: Vec<u8>,
    pub key_id: KeyId,
    /// The 32-byte public key, base64.
    pub public_key: String,
}

impl GeneratedKey {
    /// The `key_id:base64(public key)` entry for a [`TrustedKeys`] list.
    pub fn trusted_entry(&self) -> String {
        format!("{}:{}", self.key_id, self.public_key)
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("pkcs8", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Generates an ed25519 key pair.
pub fn generate_keypair() -> Result<GeneratedKey, SignatureError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| SignatureError::Random)?;
    let (pair, key_id) = keypair_from_pkcs8(pkcs8.as_ref())?;
    Ok(GeneratedKey { pkcs8: pkcs8.as_ref().to_vec(), key_id, public_key: BASE64.encode(pair.public_key().as_ref()) })
}

/// Loads a PKCS#8 key pair (as written by [`generate_keypair`]) and computes its id.
pub fn keypair_from_pkcs8(pkcs8: &[u8]) -> Result<(Ed25519KeyPair, KeyId), SignatureError> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| SignatureError::InvalidKeyPair(e.to_string()))?;
    let id = KeyId::of(pair.public_key().as_ref());
    Ok((pair, id))
}

#[cfg(test)]
mod tests;
