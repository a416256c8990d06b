//! Bearer tokens for the admin API.
//!
//! A token is `{prefix}_{id}_{secret}`: prefix `pbo` (operator) or `pbk` (tenant key), an id of
//! 12 lowercase hex characters (the key's row id, so lookup needs no scan) and a secret of 32
//! random bytes in unpadded base64url (which may itself contain `_`). Only the SHA-256 of the
//! whole token is stored. A fast hash is right here: the secret has 256 bits of entropy, so there
//! is nothing for a slow password hash to protect against, and every request verifies one.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;

/// Who a token authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An operator of the host (prefix `pbo`).
    Operator,
    /// A tenant's API key (prefix `pbk`).
    Tenant,
}

impl TokenKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            TokenKind::Operator => "pbo",
            TokenKind::Tenant => "pbk",
        }
    }

    fn from_prefix(prefix: &str) -> Option<TokenKind> {
        match prefix {
            "pbo" => Some(TokenKind::Operator),
            "pbk" => Some(TokenKind::Tenant),
            _ => None,
        }
    }
}

const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// A new token of `kind`: `(id, token)`. Show the token once; store [`hash_token`] of it.
pub fn new_token(kind: TokenKind) -> Result<(String, String), CryptoError> {
    let rng = SystemRandom::new();
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill(&mut id).map_err(|_| CryptoError::Internal("the system random generator failed"))?;
    rng.fill(&mut secret).map_err(|_| CryptoError::Internal("the system random generator failed"))?;
    let id = hex::encode(id);
    let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    let token = format!("{}_{id}_{secret}", kind.prefix());
    Ok((id, token))
}

/// The kind and id of a well-formed token, without checking its secret.
pub fn split_token(token: &str) -> Option<(TokenKind, &str)> {
    let (prefix, rest) = token.split_once('_')?;
    let kind = TokenKind::from_prefix(prefix)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_BYTES * 2 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !id_ok || secret.is_empty() {
        return None;
    }
    Some((kind, id))
}

/// Lowercase hex SHA-256 of the whole token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()))
}

/// Whether `token` hashes to `stored_hash`, compared in constant time (through `hmac::verify`).
pub fn verify_token(token: &str, stored_hash: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hash) else { return false };
    let computed = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    // HMAC both sides under one key and let ring compare the tags in constant time; the key only
    // serves the comparison, so a fixed one is fine.
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"patchbay token comparison");
    let tag = hmac::sign(&key, computed.as_ref());
    hmac::verify(&key, &stored, tag.as_ref()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_hash_and_verify() {
        let (id, token) = new_token(TokenKind::Tenant).unwrap();
        assert_eq!(id.len(), 12);
        assert!(token.starts_with(&format!("pbk_{id}_")));
        assert_eq!(token.len(), 4 + 12 + 1 + 43);
        assert_eq!(split_token(&token), Some((TokenKind::Tenant, id.as_str())));
        let hash = hash_token(&token);
        assert_eq!(hash.len(), 64);
        assert!(verify_token(&token, &hash));
        assert!(!verify_token(&format!("{token}x"), &hash));
        assert!(!verify_token(&token, "zz"));
        assert!(!verify_token(&token, &hash[..62]));

        let (op_id, op) = new_token(TokenKind::Operator).unwrap();
        assert_eq!(split_token(&op), Some((TokenKind::Operator, op_id.as_str())));
        assert_ne!(op_id, id);
    }

    #[test]
    fn malformed_tokens_do_not_split() {
        for t in
            ["", "pbk", "pbk_", "pbx_0123456789ab_s", "pbk_0123456789AB_s", "pbk_0123456789a_s", "pbk_0123456789ab_"]
        {
            assert_eq!(split_token(t), None, "{t}");
        }
        assert_eq!(split_token("pbk_0123456789ab_a_b"), Some((TokenKind::Tenant, "0123456789ab")));
    }
}
