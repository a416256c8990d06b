//! Online re-encryption of stored credentials under the active master key.
//!
//! [`reencrypt_all`] pages through rows not sealed under the active key, opens each with its old
//! key, seals it under the active one and swaps it in with a compare-and-swap on the old
//! ciphertext. Hosts keep serving meanwhile: a row rewritten concurrently (a credentials PUT) is
//! left alone because the swap loses, and if it is still under an old key it is picked up by the
//! next page. The loop ends when no row under another key remains. OAuth grants (access and
//! refresh token) follow the same way, compared on their version and access token, so a refresh
//! that stored new tokens meanwhile wins.

use patchbay_crypto::{CryptoError, Keyring};
use patchbay_store::{Store, StoreError};

/// Why [`reencrypt_all`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// A row cannot be opened (its key is not in the keyring, or it was altered), or sealing failed.
    #[error("{0}")]
    Crypto(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CryptoError> for RotationError {
    fn from(e: CryptoError) -> Self {
        RotationError::Crypto(e.to_string())
    }
}

/// What [`rotate_master_key`] did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The id of the key it added to the key file (none when the keys come from the environment,
    /// where the operator rotates by listing a new key first).
    pub new_key: Option<String>,
    /// The active key every credential is now sealed under.
    pub active_key: String,
    /// What re-encrypting the stored credentials did.
    pub report: RotationReport,
}

/// `patchbay keys rotate`: with a key file, adds a new master key and makes it active; then
/// moves every stored credential to the active key while hosts keep serving.
pub async fn rotate_master_key(settings: &crate::config::Settings) -> anyhow::Result<Rotated> {
    let store = Store::connect(&settings.database()).await?;
    let keyring = Keyring::load(settings.master_key.as_deref(), &settings.data_dir.join("master.key"))?;
    let new_key = match settings.master_key {
        None => Some(keyring.rotate()?),
        Some(_) => None,
    };
    let report = reencrypt_all(&store, &keyring).await?;
    let active_key = keyring.active_key_id()?;
    store.close().await;
    Ok(Rotated { new_key, active_key, report })
}

/// Rows fetched per round.
pub const ROTATION_BATCH: u32 = 200;

/// What [`reencrypt_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Rows now sealed under the active key by this run.
    pub reencrypted: u64,
    /// Swaps lost to a concurrent write (the row was re-read on the next round).
    pub raced: u64,
}

/// Re-encrypts every stored credential under `keyring`'s active key; see the module doc.
///
/// Stops at the first row that cannot be opened (its key is not in the keyring, or it was
/// altered), naming the row, since no later round could make progress on it.
pub async fn reencrypt_all(store: &Store, keyring: &Keyring) -> Result<RotationReport, RotationError> {
    let mut report = RotationReport::default();
    loop {
        // Re-read every round: a rotation during the run moves the target.
        let active = keyring.active_key_id()?;
        let rows = store.credentials_not_under(&active, ROTATION_BATCH).await?;
        if rows.is_empty() {
            return reencrypt_grants(store, keyring, report).await;
        }
        for row in &rows {
            let plain = keyring.open(&row.tenant, &row.installation, &row.field, &row.ciphertext).map_err(|e| {
                RotationError::Crypto(format!(
                    "cannot re-encrypt credential field {:?} of installation {} (tenant {}): {e}",
                    row.field, row.installation, row.tenant
                ))
            })?;
            let sealed = keyring.seal(&row.tenant, &row.installation, &row.field, &plain)?;
            if store.replace_ciphertext(row, &sealed.key_id, &sealed.ciphertext).await? {
                report.reencrypted += 1;
            } else {
                report.raced += 1;
            }
        }
    }
}

/// The OAuth grants' part of [`reencrypt_all`].
async fn reencrypt_grants(
    store: &Store,
    keyring: &Keyring,
    mut report: RotationReport,
) -> Result<RotationReport, RotationError> {
    loop {
        let active = keyring.active_key_id()?;
        let grants = store.oauth_grants_not_under(&active, ROTATION_BATCH).await?;
        if grants.is_empty() {
            return Ok(report);
        }
        for g in &grants {
            let reseal = |field: &str, sealed: &[u8]| {
                let plain = keyring.open(&g.tenant, &g.installation, field, sealed).map_err(|e| {
                    RotationError::Crypto(format!(
                        "cannot re-encrypt the OAuth {field} of installation {} (tenant {}): {e}",
                        g.installation, g.tenant
                    ))
                })?;
                keyring.seal(&g.tenant, &g.installation, field, &plain).map_err(RotationError::from)
            };
            let access = reseal("oauth:access_token", &g.access_token)?;
            let refresh = g.refresh_token.as_deref().map(|r| reseal("oauth:refresh_token", r)).transpose()?;
            let swapped = store
                .replace_oauth_ciphertexts(
                    g,
                    &access.key_id,
                    &access.ciphertext,
                    refresh.as_ref().map(|r| r.ciphertext.as_slice()),
                )
                .await?;
            if swapped {
                report.reencrypted += 1;
            } else {
                report.raced += 1;
            }
        }
    }
}
