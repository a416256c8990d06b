//! End-to-end tests and benchmarks for patchbay: the guest components they run are built by
//! `build.rs` and listed in [`components`].

/// Absolute paths of the guest components `build.rs` compiled for wasm32-wasip2: one constant per
/// component (`GITHUB`, `NOTIFY_WEBHOOK`, `STANDARD_WEBHOOKS`, `HOSTILE`, `TRIVIAL`, ...) and `ALL`
/// as `(crate name, path)`.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// The sample source server the data-sync tests and benchmarks read from (it lives in
/// `patchbay-dev`, which `patchbay sample-source` serves too).
pub mod sources {
    pub use patchbay_dev::sample::*;
}

/// A local OAuth 2.0 authorization server and protected API (RFC 6749, 7636, 7009).
pub mod oauth;

/// Fresh, isolated databases for tests, one per test, on either backend.
///
/// SQLite: a file in a new temporary directory. PostgreSQL: a new schema `t_<pid>_<n>_<random>`
/// in the database of `DATABASE_URL` (default [`db::DEFAULT_POSTGRES_URL`]), reached through a
/// URL whose `options=-c search_path=<schema>` startup parameter makes every connection create
/// and find its tables there; the schema is dropped when the [`db::TestDb`] is dropped. Hand
/// [`db::TestDb::url`] to `Store::connect` or to the binary as `DATABASE_URL`.
pub mod db {
    use std::sync::atomic::{AtomicU64, Ordering};

    use patchbay_store::Backend;
    use sqlx::{Connection as _, Executor as _};

    /// Used when `DATABASE_URL` is unset: the PostgreSQL every developer and CI machine runs.
    pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    /// A database that lives as long as this value.
    pub struct TestDb {
        pub url: String,
        pub backend: Backend,
        _guard: Guard,
    }

    enum Guard {
        Sqlite { _dir: tempfile::TempDir },
        Postgres { base_url: String, schema: String },
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let Guard::Postgres { base_url, schema } = self else { return };
            let (base_url, name) = (base_url.clone(), schema.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
            let dropped = std::thread::spawn(move || {
                let schema = name;
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&base_url).await.ok()?;
                    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str()).await.ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("note: could not drop test schema {schema}");
            }
        }
    }

    /// The PostgreSQL server tests use: `DATABASE_URL` if set, else [`DEFAULT_POSTGRES_URL`].
    pub fn postgres_url() -> String {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string())
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);

    fn unique_suffix() -> String {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        format!("{}_{}_{:08x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), h.finish() as u32)
    }

    /// A new empty database on `backend`. Panics with the reason when PostgreSQL is unreachable:
    /// the suite never skips it.
    pub async fn fresh_database(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("patchbay.db").display());
                TestDb { url, backend, _guard: Guard::Sqlite { _dir: dir } }
            }
            Backend::Postgres => {
                let base_url = postgres_url();
                let schema = format!("t_{}", unique_suffix());
                let mut conn = sqlx::PgConnection::connect(&base_url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base_url} (set DATABASE_URL): {e}"));
                conn.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
                    .await
                    .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
                let _ = conn.close().await;
                let sep = if base_url.contains('?') { '&' } else { '?' };
                let url = format!("{base_url}{sep}options=-c%20search_path%3D{schema}");
                TestDb { url, backend, _guard: Guard::Postgres { base_url, schema } }
            }
        }
    }
}

/// The `patchbay` binary of this build: `<target>/<profile>/patchbay`, next to the `deps/`
/// directory the test executable runs from. `cargo test` at the workspace root builds it with the
/// tests; run `cargo build -p patchbay` first when testing this package alone.
pub fn patchbay_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
    let profile_dir =
        exe.parent().and_then(|deps| deps.parent()).unwrap_or_else(|| panic!("unexpected test path {}", exe.display()));
    let bin = profile_dir.join(format!("patchbay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test` at the workspace root, or `cargo build -p patchbay` first",
        bin.display()
    );
    bin
}

/// Settings from a map instead of the process environment (benchmarks build hosts in-process).
pub struct MapEnv(pub std::collections::HashMap<&'static str, String>);

impl patchbay_services::config::Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// `d` times `PATCHBAY_TEST_TIME_SCALE` (a whole number, default 1): lets a slow runner stretch
/// every deadline of the suite at once. Deadlines only bound a failure; passing runs never wait
/// for them.
pub fn scaled(d: std::time::Duration) -> std::time::Duration {
    let scale = std::env::var("PATCHBAY_TEST_TIME_SCALE").ok().and_then(|s| s.trim().parse::<u32>().ok());
    d * scale.unwrap_or(1).max(1)
}

/// What an [`eventually`] probe answers: done with a value, or not yet (with the state seen, for
/// the failure message).
pub trait Probe {
    /// The value the wait ends with.
    type Done;
    /// `Ok(value)` when done; `Err(state)` while not.
    fn check(self) -> Result<Self::Done, Option<String>>;
}

/// `Some(value)`: done; `None`: not yet.
impl<T> Probe for Option<T> {
    type Done = T;
    fn check(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)`: done; `Err(state)`: not yet, `state` being what the last poll saw (shown when
/// time runs out).
impl<T, E: std::fmt::Display> Probe for Result<T, E> {
    type Done = T;
    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Polls `probe` until it is done (see [`Probe`]) and returns its value; panics naming `what`
/// (and the last state the probe reported) once `limit` ([`scaled`]) has passed. Polls at once,
/// then with a backoff from 10 ms up to 250 ms.
///
/// Use it for every "wait until something has happened" of an end-to-end test, with a generous
/// limit: a passing run returns as soon as the condition holds and never waits for the limit.
pub async fn eventually<P, F, Fut>(what: &str, limit: std::time::Duration, mut probe: F) -> P::Done
where
    P: Probe,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = P>,
{
    let limit = scaled(limit);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        let last = match probe().await.check() {
            Ok(done) => return done,
            Err(last) => last,
        };
        let waited = started.elapsed();
        if waited >= limit {
            match last {
                Some(state) => panic!("timed out after {waited:?} waiting for {what}; last seen: {state}"),
                None => panic!("timed out after {waited:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(pause.min(limit - waited)).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(250));
    }
}

/// Waits until at least `headroom` is left in the current epoch-aligned `window` (as the host's
/// provider budgets count them: unix time rounded down to the window's length), sleeping into the
/// next window when less is left; returns the start (unix ms) of the window then current.
///
/// An end-to-end test whose assertions hold only within one counting window starts with this and
/// checks that every window it sees starts at the returned value.
pub async fn window_headroom(window: std::time::Duration, headroom: std::time::Duration) -> i64 {
    assert!(headroom < window, "a headroom of {headroom:?} does not fit a window of {window:?}");
    let len = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let need = i64::try_from(headroom.as_millis()).unwrap_or(i64::MAX);
    loop {
        let now = patchbay_core::now_ms();
        let start = now - now.rem_euclid(len);
        let left = start + len - now;
        if left >= need {
            return start;
        }
        // Into the next window, with a little margin for the host's clock reading.
        tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0) + 50)).await;
    }
}
