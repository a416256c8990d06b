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
