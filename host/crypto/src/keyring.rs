//! [`Keyring`]: master keys and credential sealing.
//!
//! **Keys.** A master key is 32 random bytes. Its id is the first 8 bytes of its SHA-256, shown as
//! 16 hex characters. The keyring holds an ordered list; the first key is *active* (new values are
//! sealed under it) and the others stay so values sealed under them still open until
//! the services' `reencrypt_all` has moved them. Keys come from `PATCHBAY_MASTER_KEY` (comma-separated
//! base64 keys) or else from a key file (one base64 key per line, `#` comments), created with
//! mode 0600 and one fresh key on first start. A key file readable by group or others is refused.
//!
//! **Sealing.** Each tenant gets its own AES-256-GCM key: HKDF-SHA256 over the master key with
//! salt `patchbay credentials v1` and the tenant id as info. A sealed value is
//!
//! ```text
//! b"pb1" | master key id (8 bytes) | nonce (12 random bytes) | AES-256-GCM(ciphertext ‖ tag)
//! ```
//!
//! with associated data `tenant \0 installation \0 field`, so a ciphertext moved to another
//! tenant, installation or field fails authentication. Random 96-bit nonces are safe here: a
//! tenant key seals a few values per credential write, far below the 2^32 messages per key that
//! NIST SP 800-38D allows for random nonces.
//!
//! **Rotation.** [`Keyring::rotate`] prepends a new key to the key file (written to a temp file and
//! renamed, under an exclusive lock on `<file>.lock`, so concurrent rotations keep every key).
//! Other processes using the same file pick the change up without a restart: opening a value
//! under an unknown key id re-reads the file once, and sealing re-reads it when its modification
//! time changed, so they seal under the new key too.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;

/// Marks (and versions) the sealed format.
const MAGIC: &[u8; 3] = b"pb1";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = aead::NONCE_LEN;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;
const HKDF_SALT: &[u8] = b"patchbay credentials v1";
const MASTER_KEY_LEN: usize = 32;

const KEY_FILE_HEADER: &str = "# patchbay master keys: one base64-encoded 32-byte key per line; the first is active.\n\
# Keep older keys until `patchbay keys rotate` has re-encrypted every credential. Never share this file.\n";

/// Id of a master key: the first 8 bytes of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of(key: &[u8; MASTER_KEY_LEN]) -> KeyId {
        let digest = ring::digest::digest(&ring::digest::SHA256, key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        KeyId(id)
    }

    /// The 16 lowercase hex characters stored next to each ciphertext.
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.hex())
    }
}

struct MasterKey {
    id: KeyId,
    bytes: [u8; MASTER_KEY_LEN],
}

impl MasterKey {
    fn new(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self { id: KeyId::of(&bytes), bytes }
    }

    /// The AES-256-GCM key for `tenant`.
    fn tenant_key(&self, tenant: &str) -> Result<LessSafeKey, CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.bytes);
        let info = [tenant.as_bytes()];
        let okm = prk.expand(&info, &aead::AES_256_GCM).map_err(|_| CryptoError::Internal("HKDF expansion failed"))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// A sealed credential value.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Hex id of the master key it is sealed under.
    pub key_id: String,
    /// The whole sealed value: format marker, key id, nonce, then ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).field("ciphertext_len", &self.ciphertext.len()).finish()
    }
}

enum Source {
    Env,
    File(PathBuf),
}

struct Inner {
    /// Active key first; no duplicate ids.
    keys: Vec<MasterKey>,
    /// Modification time of the key file when it was last read.
    file_mtime: Option<SystemTime>,
}

/// The master keys and the sealing operations; see the module doc. Shared by reference (it has
/// interior mutability for reloads and rotation).
pub struct Keyring {
    source: Source,
    inner: RwLock<Inner>,
    rng: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = self.key_ids().unwrap_or_default();
        let source = match &self.source {
            Source::Env => "PATCHBAY_MASTER_KEY".to_string(),
            Source::File(p) => p.display().to_string(),
        };
        f.debug_struct("Keyring").field("source", &source).field("key_ids", &ids).finish()
    }
}

fn poisoned() -> CryptoError {
    CryptoError::Internal("keyring lock poisoned")
}

fn decode_key(text: &str) -> Result<[u8; MASTER_KEY_LEN], String> {
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let bytes = engine
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| "is not valid base64 (generate a key with `openssl rand -base64 32`)".to_string())?;
    <[u8; MASTER_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!("is {} bytes; a master key is 32 bytes (generate one with `openssl rand -base64 32`)", bytes.len())
    })
}

fn push_unique(keys: &mut Vec<MasterKey>, key: MasterKey) {
    if !keys.iter().any(|k| k.id == key.id) {
        keys.push(key);
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile { path: path.to_path_buf(), message: message.into() }
}

/// Reads the key file, refusing one that group or others can access.
fn read_key_file(path: &Path) -> Result<(Vec<MasterKey>, Option<SystemTime>), CryptoError> {
    let meta = fs::metadata(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(file_error(
            path,
            format!(
                "is accessible by group or others (mode {mode:03o}); restrict it with `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = decode_key(line).map_err(|why| file_error(path, format!("line {}: the key {why}", n + 1)))?;
        push_unique(&mut keys, MasterKey::new(key));
    }
    if keys.is_empty() {
        return Err(file_error(path, "holds no key"));
    }
    Ok((keys, meta.modified().ok()))
}

fn key_file_text(keys: &[MasterKey]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut text = String::from(KEY_FILE_HEADER);
    for k in keys {
        text.push_str(&engine.encode(k.bytes));
        text.push('\n');
    }
    text
}

/// Creates `path` with mode 0600 (never widened, never chmod-ed after the fact) holding `text`.
fn write_new_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn random_key(rng: &SystemRandom) -> Result<[u8; MASTER_KEY_LEN], CryptoError> {
    let mut key = [0u8; MASTER_KEY_LEN];
    rng.fill(&mut key).map_err(|_| CryptoError::Internal("the system random generator failed"))?;
    Ok(key)
}

impl Keyring {
    /// Loads the master keys: from `env_value` (the value of `PATCHBAY_MASTER_KEY`) when it is set
    /// and not blank, otherwise from `key_file`, which is created (with its directory) holding one
    /// fresh key if it does not exist.
    pub fn load(env_value: Option<&str>, key_file: &Path) -> Result<Keyring, CryptoError> {
        let rng = SystemRandom::new();
        if let Some(env) = env_value.filter(|v| !v.trim().is_empty()) {
            let mut keys = Vec::new();
            for (n, part) in env.split(',').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
                let key = decode_key(part).map_err(|why| CryptoError::BadEnvKey(format!("key {} {why}", n + 1)))?;
                push_unique(&mut keys, MasterKey::new(key));
            }
            return Ok(Keyring { source: Source::Env, inner: RwLock::new(Inner { keys, file_mtime: None }), rng });
        }
        if !key_file.exists() {
            if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)
                    .map_err(|e| file_error(key_file, format!("cannot create directory {}: {e}", dir.display())))?;
            }
            let key = MasterKey::new(random_key(&rng)?);
            match write_new_file(key_file, &key_file_text(std::slice::from_ref(&key))) {
                Ok(()) => tracing::info!(path = %key_file.display(), key_id = %key.id, "created master key file"),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(file_error(key_file, format!("cannot create: {e}"))),
            }
        }
        let (keys, file_mtime) = read_key_file(key_file)?;
        Ok(Keyring {
            source: Source::File(key_file.to_path_buf()),
            inner: RwLock::new(Inner { keys, file_mtime }),
            rng,
        })
    }

    /// Hex id of the active master key.
    pub fn active_key_id(&self) -> Result<String, CryptoError> {
        let inner = self.inner.read().map_err(|_| poisoned())?;
        inner.keys.first().map(|k| k.id.hex()).ok_or(CryptoError::Internal("the keyring holds no key"))
    }

    /// Hex ids of every key, active first.
    pub fn key_ids(&self) -> Result<Vec<String>, CryptoError> {
        let inner = self.inner.read().map_err(|_| poisoned())?;
        Ok(inner.keys.iter().map(|k| k.id.hex()).collect())
    }

    /// Re-reads the key file (no-op for environment keys). Keys only known in memory are kept
    /// after the file's keys, so a value sealed under them still opens; the file's first key
    /// becomes active.
    pub(crate) fn reload(&self) -> Result<(), CryptoError> {
        let Source::File(path) = &self.source else { return Ok(()) };
        let (mut keys, file_mtime) = read_key_file(path)?;
        let mut inner = self.inner.write().map_err(|_| poisoned())?;
        for old in inner.keys.drain(..) {
            push_unique(&mut keys, old);
        }
        inner.keys = keys;
        inner.file_mtime = file_mtime;
        Ok(())
    }

    /// Reloads when the key file changed since it was read (another process rotated). A file
    /// that became unreadable is reported and the keys in memory stay in use.
    fn refresh_if_changed(&self) -> Result<(), CryptoError> {
        let Source::File(path) = &self.source else { return Ok(()) };
        let mtime = fs::metadata(path).and_then(|m| m.modified()).ok();
        let stale = self.inner.read().map_err(|_| poisoned())?.file_mtime != mtime;
        if stale {
            self.reload_or_warn();
        }
        Ok(())
    }

    fn reload_or_warn(&self) {
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "cannot re-read the master key file; keeping the keys in memory");
        }
    }

    /// Seals `plaintext` as the value of `field` of `installation` of `tenant`, under the active
    /// key.
    pub fn seal(&self, tenant: &str, installation: &str, field: &str, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        self.refresh_if_changed()?;
        let inner = self.inner.read().map_err(|_| poisoned())?;
        let key = inner.keys.first().ok_or(CryptoError::Internal("the keyring holds no key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Internal("the system random generator failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + aead::AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id.0);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.tenant_key(tenant)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(tenant, installation, field)),
                &mut body,
            )
            .map_err(|_| CryptoError::Internal("AES-GCM sealing failed"))?;
        out.extend_from_slice(&body);
        Ok(Sealed { key_id: key.id.hex(), ciphertext: out })
    }

    /// Opens a value sealed by [`Keyring::seal`] for the same tenant, installation and field.
    pub fn open(
        &self,
        tenant: &str,
        installation: &str,
        field: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < HEADER_LEN + aead::AES_256_GCM.tag_len() {
            return Err(CryptoError::Malformed(format!("{} bytes is too short", ciphertext.len())));
        }
        if &ciphertext[..MAGIC.len()] != MAGIC {
            return Err(CryptoError::Malformed("unknown format marker (expected pb1)".into()));
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&ciphertext[MAGIC.len()..MAGIC.len() + KEY_ID_LEN]);
        let id = KeyId(id);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ciphertext[MAGIC.len() + KEY_ID_LEN..HEADER_LEN]);

        if !self.has_key(id)? {
            // Maybe another process rotated the key file: look once more.
            self.reload_or_warn();
            if !self.has_key(id)? {
                return Err(CryptoError::UnknownKey(id.hex()));
            }
        }
        let inner = self.inner.read().map_err(|_| poisoned())?;
        let key = inner.keys.iter().find(|k| k.id == id).ok_or_else(|| CryptoError::UnknownKey(id.hex()))?;
        let mut body = ciphertext[HEADER_LEN..].to_vec();
        let plain = key
            .tenant_key(tenant)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(tenant, installation, field)),
                &mut body,
            )
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }

    fn has_key(&self, id: KeyId) -> Result<bool, CryptoError> {
        Ok(self.inner.read().map_err(|_| poisoned())?.keys.iter().any(|k| k.id == id))
    }

    /// Generates a new master key and makes it active, keeping the old keys. Only for a
    /// file-backed keyring: the file is rewritten atomically (mode 0600). Returns the new key's id.
    /// Follow with the services' `reencrypt_all` to move stored credentials to it.
    pub fn rotate(&self) -> Result<String, CryptoError> {
        let path = match &self.source {
            Source::File(path) => path,
            Source::Env => {
                return Err(CryptoError::Unsupported(
                    "the master keys come from PATCHBAY_MASTER_KEY, which patchbay cannot rewrite: prepend a new \
                     key (e.g. `openssl rand -base64 32`) to its comma-separated list, keep the old keys after it, \
                     restart every host, then re-encrypt the stored credentials"
                        .into(),
                ));
            }
        };
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| file_error(path, format!("cannot open lock file {}: {e}", lock_path.display())))?;
        lock.lock().map_err(|e| file_error(path, format!("cannot lock {}: {e}", lock_path.display())))?;

        // Start from the file as it is now, so keys added by another process are kept.
        let (on_disk, _) = read_key_file(path)?;
        let new_key = MasterKey::new(random_key(&self.rng)?);
        let new_id = new_key.id;
        let mut keys = vec![new_key];
        for k in on_disk {
            push_unique(&mut keys, k);
        }
        {
            let inner = self.inner.read().map_err(|_| poisoned())?;
            for k in &inner.keys {
                push_unique(&mut keys, MasterKey { id: k.id, bytes: k.bytes });
            }
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        write_new_file(&tmp, &key_file_text(&keys))
            .map_err(|e| file_error(path, format!("cannot write {}: {e}", tmp.display())))?;
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(file_error(path, format!("cannot replace the key file: {e}")));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; not every filesystem supports syncing a directory.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        let mtime = fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut inner = self.inner.write().map_err(|_| poisoned())?;
        inner.keys = keys;
        inner.file_mtime = mtime;
        drop(inner);
        drop(lock);
        tracing::info!(key_id = %new_id, "rotated the master key");
        Ok(new_id.hex())
    }
}

/// `tenant \0 installation \0 field`: what a sealed value is bound to.
fn associated_data(tenant: &str, installation: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.len() + installation.len() + field.len() + 2);
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(installation.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(dir: &Path) -> Keyring {
        Keyring::load(None, &dir.join("master.key")).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let k = keyring(dir.path());
        let s = k.seal("t1", "i1", "token", b"hunter2").unwrap();
        assert_eq!(s.key_id, k.active_key_id().unwrap());
        assert_eq!(&s.ciphertext[..3], b"pb1");
        assert_eq!(k.open("t1", "i1", "token", &s.ciphertext).unwrap(), b"hunter2");
        for (t, i, f) in [("t2", "i1", "token"), ("t1", "i2", "token"), ("t1", "i1", "other")] {
            assert!(matches!(k.open(t, i, f, &s.ciphertext), Err(CryptoError::Open)), "{t}/{i}/{f}");
        }
        let mut flipped = s.ciphertext.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(k.open("t1", "i1", "token", &flipped), Err(CryptoError::Open)));
        assert!(matches!(k.open("t1", "i1", "token", b"xx"), Err(CryptoError::Malformed(_))));
        // Nonces are random: sealing twice differs.
        assert_ne!(k.seal("t1", "i1", "token", b"hunter2").unwrap().ciphertext, s.ciphertext);
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = Keyring::load(None, &path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = Keyring::load(None, &path).unwrap();
        assert_eq!(a.active_key_id().unwrap(), b.active_key_id().unwrap());
        assert_eq!(a.active_key_id().unwrap().len(), 16);
        let debug = format!("{a:?}");
        let text = fs::read_to_string(&path).unwrap();
        let key_line = text.lines().find(|l| !l.starts_with('#')).unwrap();
        assert!(!debug.contains(key_line));
    }

    #[test]
    fn keys_in_memory_survive_a_vanished_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k = Keyring::load(None, &path).unwrap();
        let before = k.seal("t", "i", "f", b"v").unwrap();
        fs::remove_file(&path).unwrap();
        let after = k.seal("t", "i", "f", b"w").unwrap();
        assert_eq!(after.key_id, before.key_id);
        assert_eq!(k.open("t", "i", "f", &before.ciphertext).unwrap(), b"v");
        let mut unknown = after.ciphertext.clone();
        unknown[3] ^= 0xff;
        assert!(matches!(k.open("t", "i", "f", &unknown), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn group_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        Keyring::load(None, &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = Keyring::load(None, &path).unwrap_err().to_string();
        assert!(err.contains("mode 640") && err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn env_keys_first_is_active_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        let (k1, k2) = (engine.encode([1u8; 32]), engine.encode([2u8; 32]));
        let k = Keyring::load(Some(&format!("{k1}, {k2}")), &dir.path().join("unused")).unwrap();
        assert!(!dir.path().join("unused").exists());
        assert_eq!(k.active_key_id().unwrap(), KeyId::of(&[1u8; 32]).hex());
        assert_eq!(k.key_ids().unwrap().len(), 2);
        assert!(matches!(k.rotate(), Err(CryptoError::Unsupported(_))));
        let err = Keyring::load(Some(&format!("{k1},{}", engine.encode([0u8; 16]))), dir.path()).unwrap_err();
        assert!(err.to_string().contains("key 2 is 16 bytes"), "{err}");
        let err = Keyring::load(Some("not base64!"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("key 1 is not valid base64"), "{err}");
    }

    #[test]
    fn rotation_keeps_old_keys_and_other_processes_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = Keyring::load(None, &path).unwrap();
        let b = Keyring::load(None, &path).unwrap();
        let old = a.seal("t", "i", "f", b"v1").unwrap();
        let new_id = a.rotate().unwrap();
        assert_ne!(new_id, old.key_id);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(a.key_ids().unwrap(), vec![new_id.clone(), old.key_id.clone()]);
        let fresh = a.seal("t", "i", "f", b"v2").unwrap();
        assert_eq!(fresh.key_id, new_id);
        // `b` has never seen the new key: opening triggers a reload.
        assert_eq!(b.open("t", "i", "f", &fresh.ciphertext).unwrap(), b"v2");
        assert_eq!(b.open("t", "i", "f", &old.ciphertext).unwrap(), b"v1");
        assert_eq!(b.active_key_id().unwrap(), new_id);
        assert!(!dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("tmp")));
    }
}
