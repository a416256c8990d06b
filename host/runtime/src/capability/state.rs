//! `state` capability: a small per-installation key-value store for the connector's own data.
//!
//! Keys and values are size-capped and each installation has a quota. The backend is a
//! [`StateStore`]; [`MemoryStateStore`] serves `patchbay run` and tests, the services inject a
//! durable one over the database.

use std::collections::BTreeMap;
use std::sync::Mutex;

use patchbay_core::Scope;
use wasmtime::component::Linker;

use crate::bindings::connector::patchbay::connector::state as wit;
/// What a state operation answers the guest when it fails (the WIT `state-error`).
pub use wit::StateError;

/// Size limits for one installation's state.
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys one installation may hold.
    pub max_keys: usize,
    /// Most bytes (keys plus values) one installation may hold.
    pub max_total_bytes: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self { max_key_bytes: 256, max_value_bytes: 64 * 1024, max_keys: 1_000, max_total_bytes: 1024 * 1024 }
    }
}

impl StateLimits {
    pub(crate) fn check_key(&self, key: &str) -> Result<(), StateError> {
        if key.is_empty() {
            return Err(StateError::InvalidKey("key is empty".into()));
        }
        if key.len() > self.max_key_bytes {
            return Err(StateError::TooLarge(format!(
                "key is {} bytes; the limit is {}",
                key.len(),
                self.max_key_bytes
            )));
        }
        if key.chars().any(char::is_control) {
            return Err(StateError::InvalidKey("key contains control characters".into()));
        }
        Ok(())
    }
}

/// Backend for connector state. Implementations enforce [`StateLimits`] atomically.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The value of `key`, if set.
    async fn get(&self, scope: &Scope, key: &str) -> Result<Option<String>, StateError>;
    /// Sets `key` to `value`; `TooLarge` when it would exceed `limits`.
    async fn set(&self, scope: &Scope, key: &str, value: &str, limits: &StateLimits) -> Result<(), StateError>;
    /// Removes `key`; `true` when it was set.
    async fn delete(&self, scope: &Scope, key: &str) -> Result<bool, StateError>;
    /// The keys starting with `prefix`, sorted.
    async fn list_keys(&self, scope: &Scope, prefix: &str) -> Result<Vec<String>, StateError>;
}

/// In-memory state store.
#[derive(Default)]
pub struct MemoryStateStore {
    inner: Mutex<BTreeMap<Scope, BTreeMap<String, String>>>,
}

fn poisoned() -> StateError {
    StateError::Unavailable("state store lock poisoned".into())
}

#[async_trait::async_trait]
impl StateStore for MemoryStateStore {
    async fn get(&self, scope: &Scope, key: &str) -> Result<Option<String>, StateError> {
        let m = self.inner.lock().map_err(|_| poisoned())?;
        Ok(m.get(scope).and_then(|kv| kv.get(key).cloned()))
    }

    async fn set(&self, scope: &Scope, key: &str, value: &str, limits: &StateLimits) -> Result<(), StateError> {
        let mut m = self.inner.lock().map_err(|_| poisoned())?;
        let kv = m.entry(scope.clone()).or_default();
        let old = kv.get(key).map(|v| key.len() + v.len()).unwrap_or(0);
        let total: usize = kv.iter().map(|(k, v)| k.len() + v.len()).sum();
        if !kv.contains_key(key) && kv.len() >= limits.max_keys {
            return Err(StateError::TooLarge(format!("installation already holds {} keys", limits.max_keys)));
        }
        if total - old + key.len() + value.len() > limits.max_total_bytes {
            return Err(StateError::TooLarge(format!(
                "installation state would exceed {} bytes",
                limits.max_total_bytes
            )));
        }
        kv.insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn delete(&self, scope: &Scope, key: &str) -> Result<bool, StateError> {
        let mut m = self.inner.lock().map_err(|_| poisoned())?;
        Ok(m.get_mut(scope).map(|kv| kv.remove(key).is_some()).unwrap_or(false))
    }

    async fn list_keys(&self, scope: &Scope, prefix: &str) -> Result<Vec<String>, StateError> {
        let m = self.inner.lock().map_err(|_| poisoned())?;
        Ok(m.get(scope)
            .map(|kv| {
                kv.range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// What the `state` host functions see: the calling installation's scope and limits.
pub(crate) struct StateView<'a> {
    pub scope: &'a Scope,
    pub store: &'a dyn StateStore,
    pub limits: &'a StateLimits,
    /// Removes the installation's secrets from stored values (state is read back by the API).
    pub scrubber: &'a crate::capability::log::Scrubber,
}

crate::capability::view_data!(StateData => StateView);

/// Links the `state` import; `view` gives the host functions the calling installation's
/// [`StateView`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> StateView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, StateData>(linker, view)
}

impl wit::Host for StateView<'_> {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, StateError>> {
        if let Err(e) = self.limits.check_key(&key) {
            return Ok(Err(e));
        }
        Ok(self.store.get(self.scope, &key).await)
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), StateError>> {
        if let Err(e) = self.limits.check_key(&key) {
            return Ok(Err(e));
        }
        if value.len() > self.limits.max_value_bytes {
            return Ok(Err(StateError::TooLarge(format!(
                "value is {} bytes; the limit is {}",
                value.len(),
                self.limits.max_value_bytes
            ))));
        }
        let value = self.scrubber.scrub(&value);
        Ok(self.store.set(self.scope, &key, &value, self.limits).await)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, StateError>> {
        if let Err(e) = self.limits.check_key(&key) {
            return Ok(Err(e));
        }
        Ok(self.store.delete(self.scope, &key).await)
    }

    async fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, StateError>> {
        Ok(self.store.list_keys(self.scope, &prefix).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::Host as _;

    const LIMITS: StateLimits =
        StateLimits { max_key_bytes: 16, max_value_bytes: 32, max_keys: 3, max_total_bytes: 64 };

    static NO_SECRETS: std::sync::LazyLock<crate::capability::log::Scrubber> =
        std::sync::LazyLock::new(crate::capability::log::Scrubber::default);

    fn view<'a>(store: &'a dyn StateStore, scope: &'a Scope) -> StateView<'a> {
        StateView { scope, store, limits: &LIMITS, scrubber: &NO_SECRETS }
    }

    #[tokio::test]
    async fn installations_do_not_see_each_other() {
        let store = MemoryStateStore::default();
        let (sa, sb) = (Scope::new("t1", "a"), Scope::new("t1", "b"));
        let mut a = view(&store, &sa);
        let mut b = view(&store, &sb);
        a.set("cursor".into(), "42".into()).await.unwrap().unwrap();
        assert_eq!(a.get("cursor".into()).await.unwrap().unwrap().as_deref(), Some("42"));
        assert_eq!(b.get("cursor".into()).await.unwrap().unwrap(), None);
        assert_eq!(b.list_keys(String::new()).await.unwrap().unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn limits_are_enforced() {
        let store = MemoryStateStore::default();
        let sa = Scope::new("t1", "a");
        let mut a = view(&store, &sa);
        assert!(matches!(a.set(String::new(), "v".into()).await.unwrap(), Err(StateError::InvalidKey(_))));
        assert!(matches!(a.set("k".repeat(17), "v".into()).await.unwrap(), Err(StateError::TooLarge(_))));
        assert!(matches!(a.set("k".into(), "v".repeat(33)).await.unwrap(), Err(StateError::TooLarge(_))));
        for k in ["a", "b", "c"] {
            a.set(k.into(), "v".into()).await.unwrap().unwrap();
        }
        assert!(matches!(a.set("d".into(), "v".into()).await.unwrap(), Err(StateError::TooLarge(_))));
        // Overwriting an existing key is fine at the key cap.
        a.set("a".into(), "w".into()).await.unwrap().unwrap();
        assert!(a.delete("a".into()).await.unwrap().unwrap());
        assert_eq!(a.list_keys(String::new()).await.unwrap().unwrap(), vec!["b".to_string(), "c".to_string()]);
    }

    #[tokio::test]
    async fn total_bytes_quota() {
        let store = MemoryStateStore::default();
        let sa = Scope::new("t1", "a");
        let mut a = view(&store, &sa);
        a.set("x".into(), "v".repeat(30)).await.unwrap().unwrap();
        a.set("y".into(), "v".repeat(30)).await.unwrap().unwrap();
        assert!(matches!(a.set("z".into(), "v".repeat(10)).await.unwrap(), Err(StateError::TooLarge(_))));
    }
}
