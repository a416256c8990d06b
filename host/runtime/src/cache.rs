//! Compiled-component cache: in memory by sha256 of the wasm, and on disk as precompiled artifacts
//! so a restart does not recompile.
//!
//! `Component::deserialize` trusts its input, so an artifact is only loaded when it carries a valid
//! HMAC-SHA256 tag made with this cache's key (a random key file, mode 0600, in the cache
//! directory) over the wasm digest, the engine's compatibility hash and the artifact bytes. A
//! missing, stale (other wasmtime version or configuration), corrupt or foreign file is ignored and
//! rewritten.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"PBCWASM1";
const TAG_LEN: usize = 32;

/// A sha256 digest of component bytes, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub String);

impl Digest {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Digest(hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes)))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// Where a component came from on this load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHit {
    /// Already compiled in this process.
    Memory,
    /// A precompiled artifact from the disk cache.
    Disk,
    /// Compiled now.
    Compiled,
}

pub(crate) struct DiskCache {
    dir: PathBuf,
    key: hmac::Key,
    compat: String,
    /// Most bytes of artifacts kept; writing past it removes the oldest.
    cap_bytes: u64,
}

impl DiskCache {
    pub(crate) fn open(dir: &Path, engine: &Engine, cap_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join("cache.key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                let mut k = vec![0u8; 32];
                SystemRandom::new().fill(&mut k).map_err(|_| std::io::Error::other("no system randomness"))?;
                write_private(&key_path, &k)?;
                k
            }
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Self {
            dir: dir.to_path_buf(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            compat: format!("{:016x}", h.finish()),
            cap_bytes,
        })
    }

    /// Removes the oldest artifacts (by modification time) until those left fit the bound,
    /// keeping `keep`.
    fn trim(&self, keep: &Path) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm") && e.path() != keep)
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let keep_len = std::fs::metadata(keep).map(|m| m.len()).unwrap_or(0);
        let mut total: u64 = keep_len + files.iter().map(|(_, len, _)| len).sum::<u64>();
        files.sort();
        for (_, len, path) in files {
            if total <= self.cap_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                tracing::debug!(path = %path.display(), "removed an old precompiled artifact");
            }
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", digest.0, self.compat))
    }

    fn tag(&self, digest: &Digest, artifact: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(digest.0.as_bytes());
        ctx.update(b"\0");
        ctx.update(self.compat.as_bytes());
        ctx.update(b"\0");
        ctx.update(artifact);
        ctx.sign()
    }

    /// Loads an authenticated artifact, or `None`.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).ok()?;
        if bytes.len() < MAGIC.len() + TAG_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let (tag, artifact) = bytes[MAGIC.len()..].split_at(TAG_LEN);
        if !constant_time_eq(self.tag(digest, artifact).as_ref(), tag) {
            tracing::warn!(path = %path.display(), "ignoring precompiled artifact with an invalid tag");
            return None;
        }
        // SAFETY: the bytes were produced by `Component::serialize` of an engine with the same
        // compatibility hash and carry this cache's HMAC tag, so they are our own output unchanged.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable precompiled artifact: {e}");
                None
            }
        }
    }

    pub(crate) fn store(&self, digest: &Digest, component: &Component) {
        let result = (|| -> std::io::Result<()> {
            let artifact = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
            let tag = self.tag(digest, &artifact);
            let mut out = Vec::with_capacity(MAGIC.len() + TAG_LEN + artifact.len());
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(tag.as_ref());
            out.extend_from_slice(&artifact);
            let final_path = self.path(digest);
            let tmp = final_path.with_extension(format!("tmp{}", std::process::id()));
            write_private(&tmp, &out)?;
            std::fs::rename(&tmp, &final_path)?;
            self.trim(&final_path);
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!("could not write precompiled artifact for {digest}: {e}");
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file readable by the owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// In-memory map from digest to loaded entry, with single-flight compilation per digest,
/// bounded in bytes of compiled code: inserting past the bound evicts the least recently used
/// entries (never the one just inserted). An evicted entry stays alive for whoever holds it;
/// the next load of its bytes reads it from disk or compiles it again.
pub(crate) struct MemoryCache<V> {
    entries: Mutex<Entries<V>>,
    compiling: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
    cap_bytes: usize,
}

struct Entries<V> {
    map: HashMap<Digest, Entry<V>>,
    bytes: usize,
    tick: u64,
}

struct Entry<V> {
    value: Arc<V>,
    bytes: usize,
    used: u64,
}

impl<V> MemoryCache<V> {
    pub(crate) fn new(cap_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(Entries { map: HashMap::new(), bytes: 0, tick: 0 }),
            compiling: Mutex::default(),
            cap_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, d: &Digest) -> Option<Arc<V>> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let e = g.map.get_mut(d)?;
        e.used = tick;
        Some(e.value.clone())
    }

    /// Caches `v` (`bytes` of compiled code), evicting the least recently used entries past the
    /// bound, and releases the digest's compile lock entry.
    pub(crate) fn insert(&self, d: Digest, v: Arc<V>, bytes: usize) {
        self.forget_compile(&d);
        let mut g = self.lock();
        g.tick += 1;
        let used = g.tick;
        if let Some(old) = g.map.insert(d.clone(), Entry { value: v, bytes, used }) {
            g.bytes -= old.bytes;
        }
        g.bytes += bytes;
        while g.bytes > self.cap_bytes && g.map.len() > 1 {
            let Some(oldest) =
                g.map.iter().filter(|(k, _)| **k != d).min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = g.map.remove(&oldest) {
                g.bytes -= e.bytes;
                tracing::debug!(digest = %oldest, bytes = e.bytes, "evicted a compiled component from memory");
            }
        }
    }

    /// Drops the digest's compile lock entry (after a load, successful or not).
    pub(crate) fn forget_compile(&self, d: &Digest) {
        if let Ok(mut c) = self.compiling.lock() {
            c.remove(d);
        }
    }

    /// A lock held while one thread compiles `d`, so concurrent loads of the same bytes compile once.
    pub(crate) fn compile_lock(&self, d: &Digest) -> Arc<Mutex<()>> {
        let mut m = match self.compiling.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(d.clone()).or_default().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Bytes of compiled code held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest(format!("{n:02x}"))
    }

    #[test]
    fn memory_cache_evicts_the_least_recently_used_past_its_bound() {
        let c = MemoryCache::new(100);
        c.insert(d(1), Arc::new(1), 40);
        c.insert(d(2), Arc::new(2), 40);
        assert!(c.get(&d(1)).is_some()); // 2 is now the least recently used
        let held = c.get(&d(2)).unwrap();
        c.get(&d(1));
        c.insert(d(3), Arc::new(3), 40);
        assert!(c.get(&d(2)).is_none(), "2 was evicted");
        assert_eq!(*held, 2, "a holder keeps an evicted entry alive");
        assert!(c.get(&d(1)).is_some() && c.get(&d(3)).is_some());
        assert_eq!((c.len(), c.bytes()), (2, 80));
        // An entry larger than the bound is kept alone.
        c.insert(d(4), Arc::new(4), 500);
        assert_eq!((c.len(), c.bytes()), (1, 500));
        c.insert(d(4), Arc::new(4), 10);
        assert_eq!((c.len(), c.bytes()), (1, 10));
    }
}
