//! The store suite: every scenario runs on SQLite and on PostgreSQL (`store::sqlite::<name>`,
//! `store::postgres::<name>`), each in its own fresh database (see `patchbay_tests::db`).

use std::collections::BTreeSet;

use patchbay_core::Scope;
use patchbay_core::log::{Level, LogEntry, Source};
use patchbay_crypto::{self as crypto, CryptoError, Keyring, TokenKind};
use patchbay_runtime::capability::log::OperationLog;
use patchbay_runtime::capability::state::StateError;
use patchbay_runtime::capability::state::{StateLimits, StateStore};
use patchbay_services::oplog::{OplogConfig, StoreOperationLog};
use patchbay_services::rotation;
use patchbay_services::state::DurableState;
use patchbay_store::oauth::NewTokens;
use patchbay_store::{
    Backend, ConnectorFilter, FILL_CHUNK, Fill, InstallationFilter, InstallationPatch, LogQuery, MAX_PAGE, NewApiKey,
    NewInstallation, NewLogRecord, NewVersion, PageRequest, PublishOutcome, SealedField, Store, StoreError, Viewer,
};
use patchbay_tests::db::{TestDb, fresh_database};

/// Generates `sqlite::<name>` and `postgres::<name>` tests calling `<name>(backend)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(patchbay_store::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(patchbay_store::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_are_idempotent_and_concurrent_starts_agree,
    settings_insert_if_absent,
    tenants_create_list_conflict,
    api_keys_scoped_and_revocable,
    publish_created_unchanged_conflict_and_blob_dedupe,
    failed_publish_rolls_back_everything,
    private_connectors_are_invisible_to_other_tenants_and_shadow_public_ones,
    catalog_filters_by_category_and_search,
    deprecation_keeps_first_time_and_moves_latest,
    installations_crud_revision_and_name_conflict,
    installations_of_another_tenant_are_absent_everywhere,
    credentials_replace_delete_and_cascade,
    sealed_credentials_round_trip_and_moved_ciphertext_fails,
    rotation_reencrypts_everything_online,
    logs_filter_by_level_time_and_cursor,
    operation_log_batches_flushes_and_counts_drops,
    state_store_enforces_limits_atomically,
    deleting_an_installation_removes_its_data,
    lists_page_by_keyset_through_inserts_and_deletes,
    config_changes_name_the_tenant_and_are_pruned,
    bulk_fill_writes_rows_the_host_reads,
    outbox_tables_carry_the_fewest_indexes_and_every_hot_query_uses_one,
);

async fn open(backend: Backend) -> (TestDb, Store) {
    let db = fresh_database(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.backend(), backend);
    (db, store)
}

/// A raw connection to the test database, for assertions the store API does not expose.
async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

fn version(owner: Option<&str>, id: &str, v: &str, bytes: &[u8]) -> NewVersion {
    NewVersion {
        owner: owner.map(str::to_string),
        connector_id: id.into(),
        version: v.into(),
        digest: sha256(bytes),
        manifest_json: format!(r#"{{"id":"{id}","version":"{v}"}}"#),
        category: "notification-provider".into(),
        title: format!("{id} title"),
        description: format!("{id} description"),
        provider: "Example".into(),
        bundle_id: None,
        size: bytes.len() as i64,
        signed_by: None,
        state: patchbay_store::VersionState::Ready,
    }
}

async fn publish(store: &Store, owner: Option<&str>, id: &str, v: &str) {
    let bytes = format!("component {owner:?} {id} {v}").into_bytes();
    assert_eq!(store.publish(&version(owner, id, v, &bytes), &bytes).await.unwrap(), PublishOutcome::Created);
}

fn new_installation(tenant: &str, id: &str, name: &str, connector: &str, v: &str) -> NewInstallation {
    NewInstallation {
        id: id.into(),
        tenant: tenant.into(),
        name: name.into(),
        connector_owner: None,
        connector_id: connector.into(),
        version: v.into(),
        api_version: None,
        config_json: r#"{"channel":"ops"}"#.into(),
        limits_json: "{}".into(),
        credentials_from: None,
        enabled: true,
    }
}

/// Tenants `t1`, `t2` and installation `i1` of `t1` on public `notify@1.0.0` (and `2.0.0`).
async fn with_installation(backend: Backend) -> (TestDb, Store) {
    let (db, store) = open(backend).await;
    store.create_tenant("t1", "Tenant One").await.unwrap();
    store.create_tenant("t2", "Tenant Two").await.unwrap();
    publish(&store, None, "notify", "1.0.0").await;
    publish(&store, None, "notify", "2.0.0").await;
    store.create_installation(&new_installation("t1", "i1", "alerts", "notify", "1.0.0")).await.unwrap();
    (db, store)
}

fn sealed(field: &str, bytes: &[u8]) -> SealedField {
    SealedField { field: field.into(), key_id: "k".into(), ciphertext: bytes.to_vec() }
}

fn log_record(installation: &str, at_ms: i64, level: Level, message: &str) -> NewLogRecord {
    NewLogRecord {
        tenant: "t1".into(),
        installation: installation.into(),
        at_ms,
        level,
        source: "guest".into(),
        message: message.into(),
        fields_json: r#"[["k","v"],["k","w"]]"#.into(),
    }
}

async fn migrations_are_idempotent_and_concurrent_starts_agree(backend: Backend) {
    let db = fresh_database(backend).await;
    // Two hosts starting together on an empty database.
    let (a, b) = tokio::join!(Store::connect(&db.url), Store::connect(&db.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.create_tenant("acme", "Acme").await.unwrap();
    a.close().await;
    // And again on a migrated one: nothing to do, data intact.
    let c = Store::connect(&db.url).await.unwrap();
    assert_eq!(c.tenant("acme").await.unwrap().unwrap().name, "Acme");
    assert_eq!(b.list_tenants(&PageRequest::first(MAX_PAGE)).await.unwrap().items.len(), 1);
    // Every migration file of the backend applied exactly once.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/store/migrations").join(backend.as_str());
    let files =
        std::fs::read_dir(&dir).unwrap().filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|e| e == "sql"));
    let files = i64::try_from(files.count()).unwrap();
    assert!(files >= 2, "{files} migrations in {}", dir.display());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await, files);
}

async fn settings_insert_if_absent(backend: Backend) {
    let (_db, store) = open(backend).await;
    assert_eq!(store.setting("operator_token_hash").await.unwrap(), None);
    assert!(store.insert_setting_if_absent("operator_token_hash", "first").await.unwrap());
    assert!(!store.insert_setting_if_absent("operator_token_hash", "second").await.unwrap());
    assert_eq!(store.setting("operator_token_hash").await.unwrap().as_deref(), Some("first"));
}

async fn tenants_create_list_conflict(backend: Backend) {
    let (_db, store) = open(backend).await;
    let acme = store.create_tenant("acme", "Acme Inc").await.unwrap();
    assert_eq!((acme.id.as_str(), acme.name.as_str()), ("acme", "Acme Inc"));
    assert!(acme.created_at_ms > 0);
    store.create_tenant("beta", "Beta").await.unwrap();
    match store.create_tenant("acme", "Other").await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "tenant acme already exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let ids: Vec<_> =
        store.list_tenants(&PageRequest::first(MAX_PAGE)).await.unwrap().items.into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["acme", "beta"]);
    assert_eq!(store.tenant("acme").await.unwrap(), Some(acme));
    assert_eq!(store.tenant("nope").await.unwrap(), None);
    assert!(matches!(store.create_tenant("", "x").await, Err(StoreError::Invalid(_))));
}

async fn api_keys_scoped_and_revocable(backend: Backend) {
    let (_db, store) = open(backend).await;
    store.create_tenant("t1", "One").await.unwrap();
    store.create_tenant("t2", "Two").await.unwrap();
    let (op_id, op_token) = crypto::new_token(TokenKind::Operator).unwrap();
    let (key_id, key_token) = crypto::new_token(TokenKind::Tenant).unwrap();
    let key = |id: &str, tenant: Option<&str>, token: &str, scopes: &[&str]| NewApiKey {
        id: id.into(),
        tenant: tenant.map(str::to_string),
        name: format!("key {id}"),
        secret_hash: crypto::hash_token(token),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    store.create_api_key(&key(&op_id, None, &op_token, &[])).await.unwrap();
    let created = store.create_api_key(&key(&key_id, Some("t1"), &key_token, &["view", "manage"])).await.unwrap();
    assert!(!format!("{created:?}").contains(&created.secret_hash), "Debug must not print the hash");

    // Authentication: token → id → stored hash.
    let (kind, id) = crypto::split_token(&key_token).unwrap();
    assert_eq!(kind, TokenKind::Tenant);
    let stored = store.api_key(id).await.unwrap().unwrap();
    assert!(crypto::verify_token(&key_token, &stored.secret_hash));
    assert!(!crypto::verify_token(&op_token, &stored.secret_hash));
    assert_eq!(stored.tenant.as_deref(), Some("t1"));
    assert_eq!(stored.scopes, ["view", "manage"]);
    assert!(!stored.revoked);

    assert_eq!(
        store
            .list_api_keys(None, &PageRequest::first(MAX_PAGE))
            .await
            .unwrap()
            .items
            .iter()
            .map(|k| &k.id)
            .collect::<Vec<_>>(),
        [&op_id]
    );
    assert_eq!(store.list_api_keys(Some("t1"), &PageRequest::first(MAX_PAGE)).await.unwrap().items.len(), 1);
    assert!(store.list_api_keys(Some("t2"), &PageRequest::first(MAX_PAGE)).await.unwrap().items.is_empty());

    assert!(matches!(
        store.create_api_key(&key(&key_id, Some("t1"), &key_token, &[])).await,
        Err(StoreError::Conflict(_))
    ));
    match store.create_api_key(&key("aaaaaaaaaaaa", Some("ghost"), &key_token, &[])).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "tenant ghost not found"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // Another tenant (or the operator scope) cannot revoke t1's key.
    assert!(!store.revoke_api_key(Some("t2"), &key_id).await.unwrap());
    assert!(!store.revoke_api_key(None, &key_id).await.unwrap());
    assert!(!store.api_key(&key_id).await.unwrap().unwrap().revoked);
    assert!(store.revoke_api_key(Some("t1"), &key_id).await.unwrap());
    assert!(store.revoke_api_key(Some("t1"), &key_id).await.unwrap(), "revoking twice is fine");
    assert!(store.api_key(&key_id).await.unwrap().unwrap().revoked);
    assert!(store.revoke_api_key(None, &op_id).await.unwrap());
    assert!(!store.revoke_api_key(None, "000000000000").await.unwrap());
}

async fn publish_created_unchanged_conflict_and_blob_dedupe(backend: Backend) {
    let (db, store) = open(backend).await;
    let v1 = b"\0asm component one".to_vec();
    let new = version(None, "notify", "1.0.0", &v1);
    assert_eq!(store.publish(&new, &v1).await.unwrap(), PublishOutcome::Created);
    assert_eq!(store.publish(&new, &v1).await.unwrap(), PublishOutcome::Unchanged);

    let other = b"\0asm component two".to_vec();
    match store.publish(&version(None, "notify", "1.0.0", &other), &other).await {
        Err(StoreError::Conflict(m)) => {
            assert_eq!(m, "notify@1.0.0 is already published with different content; published versions are immutable")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let row = store.version(Viewer::Operator, "notify", "1.0.0").await.unwrap().unwrap();
    assert_eq!(row.digest, sha256(&v1), "the published version is unchanged");
    assert_eq!(row.owner, None);
    assert_eq!(row.size, v1.len() as i64);
    assert_eq!(row.manifest_json, new.manifest_json);
    assert_eq!(store.component_bytes(&row.digest).await.unwrap().unwrap(), v1);
    assert_eq!(store.component_bytes(&sha256(&other)).await.unwrap(), None);

    // The same bytes under another version and another owner share one blob.
    store.create_tenant("t1", "One").await.unwrap();
    store.publish(&version(None, "notify", "1.0.1", &v1), &v1).await.unwrap();
    store.publish(&version(Some("t1"), "notify", "1.0.0", &v1), &v1).await.unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM component_blobs").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM connector_versions").await, 3);

    // The digest must be the bytes' sha256.
    let mut lying = version(None, "notify", "3.0.0", &v1);
    lying.digest = sha256(b"something else");
    assert!(matches!(store.publish(&lying, &v1).await, Err(StoreError::Invalid(_))));
    // A private connector needs an existing tenant.
    assert!(matches!(
        store.publish(&version(Some("ghost"), "x", "1.0.0", &v1), &v1).await,
        Err(StoreError::NotFound(_))
    ));

    // Catalog metadata follows the highest version, whatever the publishing order.
    let mut newest = version(None, "notify", "2.0.0", b"v2");
    newest.title = "Notify v2".into();
    store.publish(&newest, b"v2").await.unwrap();
    let mut backport = version(None, "notify", "1.5.0", b"v15");
    backport.title = "Notify backport".into();
    store.publish(&backport, b"v15").await.unwrap();
    let summary = store.connector(Viewer::Operator, "notify").await.unwrap().unwrap();
    assert_eq!(summary.title, "Notify v2");
    assert_eq!(summary.latest_version, "2.0.0");
    assert_eq!(summary.versions, ["2.0.0", "1.5.0", "1.0.1", "1.0.0"]);
    let versions: Vec<_> =
        store.versions(Viewer::Operator, "notify").await.unwrap().into_iter().map(|v| v.version).collect();
    assert_eq!(versions, summary.versions);
}

async fn failed_publish_rolls_back_everything(backend: Backend) {
    let (db, store) = open(backend).await;
    let bytes = b"component".to_vec();
    let mut bad = version(None, "notify", "1.0.0", &bytes);
    // Refused by the CHECK constraint on connector_versions.size, after the blob and the
    // connector row were written in the same transaction.
    bad.size = -1;
    match store.publish(&bad, &bytes).await {
        Err(StoreError::Invalid(m)) => assert!(m.starts_with("cannot publish notify@1.0.0: "), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.connector(Viewer::Operator, "notify").await.unwrap(), None);
    assert_eq!(store.component_bytes(&sha256(&bytes)).await.unwrap(), None);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM connectors").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM component_blobs").await, 0);
    // The same publish with a sane size then works.
    bad.size = bytes.len() as i64;
    assert_eq!(store.publish(&bad, &bytes).await.unwrap(), PublishOutcome::Created);
}

async fn private_connectors_are_invisible_to_other_tenants_and_shadow_public_ones(backend: Backend) {
    let (_db, store) = open(backend).await;
    store.create_tenant("a", "A").await.unwrap();
    store.create_tenant("b", "B").await.unwrap();
    publish(&store, None, "notify", "1.0.0").await;
    publish(&store, Some("a"), "a-only", "1.0.0").await;
    publish(&store, Some("b"), "b-only", "1.0.0").await;
    publish(&store, Some("a"), "notify", "9.0.0").await;

    let listed = |viewer: Viewer| {
        let store = store.clone();
        async move {
            store
                .list_connectors(viewer, &ConnectorFilter::default(), &PageRequest::first(MAX_PAGE))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| (c.owner, c.id, c.latest_version))
                .collect::<Vec<_>>()
        }
    };
    let s = |x: &str| x.to_string();
    assert_eq!(
        listed(Viewer::Tenant(s("a"))).await,
        [(Some(s("a")), s("a-only"), s("1.0.0")), (Some(s("a")), s("notify"), s("9.0.0"))]
    );
    assert_eq!(
        listed(Viewer::Tenant(s("b"))).await,
        [(Some(s("b")), s("b-only"), s("1.0.0")), (None, s("notify"), s("1.0.0"))]
    );
    assert_eq!(listed(Viewer::Operator).await.len(), 4);

    // b cannot see a's private connector by any route.
    let b = || Viewer::Tenant(s("b"));
    assert_eq!(store.connector(b(), "a-only").await.unwrap(), None);
    assert!(store.versions(b(), "a-only").await.unwrap().is_empty());
    assert_eq!(store.version(b(), "a-only", "1.0.0").await.unwrap(), None);
    assert_eq!(store.version(b(), "notify", "9.0.0").await.unwrap(), None);
    // a's private notify shadows the public one; the operator resolves to the public one.
    let a_notify = store.connector(Viewer::Tenant(s("a")), "notify").await.unwrap().unwrap();
    assert_eq!((a_notify.owner.as_deref(), a_notify.versions.as_slice()), (Some("a"), &[s("9.0.0")][..]));
    assert_eq!(store.version(Viewer::Tenant(s("a")), "notify", "1.0.0").await.unwrap(), None);
    let op_notify = store.connector(Viewer::Operator, "notify").await.unwrap().unwrap();
    assert_eq!(op_notify.owner, None);
    assert_eq!(store.connector(Viewer::Operator, "b-only").await.unwrap().unwrap().owner.as_deref(), Some("b"));

    // Installing follows the same rule: b cannot install a's private connector.
    let mut inst = new_installation("b", "ib", "x", "a-only", "1.0.0");
    inst.connector_owner = Some(s("a"));
    assert!(matches!(store.create_installation(&inst).await, Err(StoreError::NotFound(_))));
}

async fn catalog_filters_by_category_and_search(backend: Backend) {
    let (_db, store) = open(backend).await;
    let mut slack = version(None, "slack", "1.0.0", b"s");
    slack.title = "Slack notifications".into();
    slack.category = "communication-channel".into();
    slack.provider = "Slack Technologies".into();
    store.publish(&slack, b"s").await.unwrap();
    let mut stripe = version(None, "stripe", "1.0.0", b"p");
    stripe.category = "payment-gateway".into();
    stripe.description = "Cards, 100% online".into();
    store.publish(&stripe, b"p").await.unwrap();

    let ids = |filter: ConnectorFilter| {
        let store = store.clone();
        async move {
            store
                .list_connectors(Viewer::Operator, &filter, &PageRequest::first(MAX_PAGE))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    let f = |category: Option<&str>, search: Option<&str>| ConnectorFilter {
        category: category.map(str::to_string),
        search: search.map(str::to_string),
    };
    assert_eq!(ids(f(None, None)).await, ["slack", "stripe"]);
    assert_eq!(ids(f(Some("payment-gateway"), None)).await, ["stripe"]);
    assert_eq!(ids(f(None, Some("SLACK"))).await, ["slack"]);
    assert_eq!(ids(f(None, Some("technologies"))).await, ["slack"]);
    assert_eq!(ids(f(None, Some("100%"))).await, ["stripe"]);
    // LIKE wildcards in the search are literal characters.
    assert!(ids(f(None, Some("1%0"))).await.is_empty());
    assert!(ids(f(None, Some("s_ack"))).await.is_empty());
    assert!(ids(f(None, Some("\\"))).await.is_empty());
    assert!(ids(f(Some("payment-gateway"), Some("slack"))).await.is_empty());
}

async fn deprecation_keeps_first_time_and_moves_latest(backend: Backend) {
    let (_db, store) = open(backend).await;
    publish(&store, None, "notify", "1.0.0").await;
    publish(&store, None, "notify", "2.0.0").await;
    let row = store
        .deprecate_version(None, "notify", "2.0.0", Some("2030-01-31".into()), Some("use 1.x".into()))
        .await
        .unwrap();
    assert_eq!(row.sunset.as_deref(), Some("2030-01-31"));
    assert_eq!(row.deprecation_message.as_deref(), Some("use 1.x"));
    let first = row.deprecated_at_ms.unwrap();
    let summary = store.connector(Viewer::Operator, "notify").await.unwrap().unwrap();
    assert_eq!(summary.latest_version, "1.0.0", "a non-deprecated version is preferred");

    let again = store.deprecate_version(None, "notify", "2.0.0", Some("2031-01-01".into()), None).await.unwrap();
    assert_eq!(again.deprecated_at_ms, Some(first));
    assert_eq!(again.sunset.as_deref(), Some("2031-01-01"));
    assert_eq!(store.version(Viewer::Operator, "notify", "2.0.0").await.unwrap().unwrap(), again);

    store.deprecate_version(None, "notify", "1.0.0", None, None).await.unwrap();
    let summary = store.connector(Viewer::Operator, "notify").await.unwrap().unwrap();
    assert_eq!(summary.latest_version, "2.0.0", "all deprecated: the highest");

    match store.deprecate_version(None, "notify", "3.0.0", None, None).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "connector notify has no version 3.0.0"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Owner matters: there is no private notify of t1.
    assert!(matches!(
        store.deprecate_version(Some("t1"), "notify", "1.0.0", None, None).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn installations_crud_revision_and_name_conflict(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    let i1 = store.installation("t1", "i1").await.unwrap().unwrap();
    assert_eq!((i1.revision, i1.enabled, i1.status.as_str()), (1, true, "active"));
    assert_eq!(
        (i1.connector_owner.as_deref(), i1.connector_id.as_str(), i1.version.as_str()),
        (None, "notify", "1.0.0")
    );
    assert_eq!(i1.config_json, r#"{"channel":"ops"}"#);

    match store.create_installation(&new_installation("t1", "i2", "alerts", "notify", "1.0.0")).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, r#"tenant t1 already has an installation named "alerts""#),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        store.create_installation(&new_installation("t1", "i1", "other", "notify", "1.0.0")).await,
        Err(StoreError::Conflict(_))
    ));
    // The same name in another tenant is fine.
    store.create_installation(&new_installation("t2", "j1", "alerts", "notify", "1.0.0")).await.unwrap();
    match store.create_installation(&new_installation("ghost", "g1", "x", "notify", "1.0.0")).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "tenant ghost not found"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.create_installation(&new_installation("t1", "i3", "x", "notify", "7.0.0")).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "connector notify has no version 7.0.0"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let mut bundled = new_installation("t1", "i3", "bundled", "notify", "1.0.0");
    bundled.credentials_from = Some("j1".into());
    assert!(matches!(store.create_installation(&bundled).await, Err(StoreError::NotFound(_))), "j1 is t2's");
    bundled.credentials_from = Some("i1".into());
    assert_eq!(store.create_installation(&bundled).await.unwrap().credentials_from.as_deref(), Some("i1"));

    // Upgrade, pin an api version, disable: each update is one revision.
    let up = InstallationPatch {
        version: Some("2.0.0".into()),
        api_version: Some(Some("2024-01".into())),
        ..Default::default()
    };
    let i1b = store.update_installation("t1", "i1", &up).await.unwrap();
    assert_eq!((i1b.version.as_str(), i1b.api_version.as_deref(), i1b.revision), ("2.0.0", Some("2024-01"), 2));
    assert!(i1b.updated_at_ms >= i1.updated_at_ms);
    assert_eq!(i1b.config_json, i1.config_json, "untouched fields stay");
    let off = InstallationPatch {
        enabled: Some(false),
        status: Some("disabled".into()),
        config_json: Some("{}".into()),
        limits_json: Some(r#"{"timeout_ms":100}"#.into()),
        ..Default::default()
    };
    let i1c = store.update_installation("t1", "i1", &off).await.unwrap();
    assert_eq!((i1c.enabled, i1c.status.as_str(), i1c.revision), (false, "disabled", 3));
    assert_eq!(i1c.api_version.as_deref(), Some("2024-01"), "None leaves the api version");
    let clear = InstallationPatch { api_version: Some(None), enabled: Some(true), ..Default::default() };
    let i1d = store.update_installation("t1", "i1", &clear).await.unwrap();
    assert_eq!((i1d.api_version, i1d.enabled, i1d.revision), (None, true, 4));
    // Rollback is a PATCH back.
    let back = InstallationPatch { version: Some("1.0.0".into()), ..Default::default() };
    assert_eq!(store.update_installation("t1", "i1", &back).await.unwrap().version, "1.0.0");

    let rename = InstallationPatch { name: Some("bundled".into()), ..Default::default() };
    assert!(matches!(store.update_installation("t1", "i1", &rename).await, Err(StoreError::Conflict(_))));
    let bad = InstallationPatch { version: Some("9.9.9".into()), ..Default::default() };
    match store.update_installation("t1", "i1", &bad).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "connector notify has no version 9.9.9"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.installation("t1", "i1").await.unwrap().unwrap().revision, 5, "failed updates change nothing");

    let names: Vec<_> = store
        .list_installations("t1", &InstallationFilter::default(), &PageRequest::first(MAX_PAGE))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["alerts", "bundled"]);
    assert!(store.delete_installation("t1", "i3").await.unwrap());
    assert!(!store.delete_installation("t1", "i3").await.unwrap());
    assert_eq!(store.installation("t1", "i3").await.unwrap(), None);
}

async fn installations_of_another_tenant_are_absent_everywhere(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    store.put_credentials("t1", "i1", &[sealed("token", b"ct")]).await.unwrap();
    store.append_logs(&[log_record("i1", 1, Level::Info, "hello")]).await.unwrap();

    assert_eq!(store.installation("t2", "i1").await.unwrap(), None);
    assert!(
        store
            .list_installations("t2", &InstallationFilter::default(), &PageRequest::first(MAX_PAGE))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let patch = InstallationPatch { enabled: Some(false), ..Default::default() };
    match store.update_installation("t2", "i1", &patch).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "installation i1 not found"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(store.credentials("t2", "i1").await.unwrap().is_empty());
    assert!(matches!(store.put_credentials("t2", "i1", &[sealed("token", b"x")]).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.delete_credentials("t2", "i1").await.unwrap(), 0);
    assert!(store.logs("t2", "i1", &LogQuery::default()).await.unwrap().items.is_empty());
    assert!(!store.delete_installation("t2", "i1").await.unwrap());

    // t1's data is untouched by all of that.
    let i1 = store.installation("t1", "i1").await.unwrap().unwrap();
    // Revision 2: created, then its credentials were set.
    assert_eq!((i1.enabled, i1.revision), (true, 2));
    assert_eq!(store.credentials("t1", "i1").await.unwrap(), [sealed("token", b"ct")]);
    assert_eq!(store.logs("t1", "i1", &LogQuery::default()).await.unwrap().items.len(), 1);
}

async fn credentials_replace_delete_and_cascade(backend: Backend) {
    let (db, store) = with_installation(backend).await;
    store.put_credentials("t1", "i1", &[sealed("token", b"a"), sealed("account", b"b")]).await.unwrap();
    assert_eq!(store.credentials("t1", "i1").await.unwrap(), [sealed("account", b"b"), sealed("token", b"a")]);
    // PUT replaces the whole set.
    store.put_credentials("t1", "i1", &[sealed("token", b"c")]).await.unwrap();
    assert_eq!(store.credentials("t1", "i1").await.unwrap(), [sealed("token", b"c")]);
    match store.put_credentials("t1", "i1", &[sealed("x", b"1"), sealed("x", b"2")]).await {
        Err(StoreError::Invalid(m)) => assert_eq!(m, r#"credential field "x" is given more than once"#),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.credentials("t1", "i1").await.unwrap(), [sealed("token", b"c")], "a refused PUT changes nothing");
    assert!(matches!(store.put_credentials("t1", "nope", &[]).await, Err(StoreError::NotFound(_))));

    assert_eq!(store.delete_credentials("t1", "i1").await.unwrap(), 1);
    assert!(store.credentials("t1", "i1").await.unwrap().is_empty());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM credentials").await, 0, "hard delete");

    // The foreign key cascades even when the installation row is deleted directly.
    store.put_credentials("t1", "i1", &[sealed("token", b"d")]).await.unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("DELETE FROM installations WHERE id = 'i1'").execute(&pool).await.unwrap();
    pool.close().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM credentials").await, 0);
}

async fn sealed_credentials_round_trip_and_moved_ciphertext_fails(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    store.create_installation(&new_installation("t1", "i2", "second", "notify", "1.0.0")).await.unwrap();
    store.create_installation(&new_installation("t2", "j1", "theirs", "notify", "1.0.0")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::load(None, &dir.path().join("master.key")).unwrap();

    let seal = |tenant: &str, inst: &str, field: &str, value: &str| {
        let s = keyring.seal(tenant, inst, field, value.as_bytes()).unwrap();
        SealedField { field: field.into(), key_id: s.key_id, ciphertext: s.ciphertext }
    };
    store
        .put_credentials("t1", "i1", &[seal("t1", "i1", "token", "sk_live_1"), seal("t1", "i1", "account", "acct_1")])
        .await
        .unwrap();
    let stored = store.credentials("t1", "i1").await.unwrap();
    for f in &stored {
        assert_eq!(f.key_id, keyring.active_key_id().unwrap());
        assert!(!f.ciphertext.windows(9).any(|w| w == b"sk_live_1"), "no plaintext at rest");
    }
    let open = |tenant: &str, inst: &str, f: &SealedField| keyring.open(tenant, inst, &f.field, &f.ciphertext);
    let token = stored.iter().find(|f| f.field == "token").unwrap().clone();
    assert_eq!(open("t1", "i1", &token).unwrap(), b"sk_live_1");

    // Copy the stored ciphertext into other rows: another installation, another field, another
    // tenant. None of them opens.
    store.put_credentials("t1", "i2", std::slice::from_ref(&token)).await.unwrap();
    let moved = &store.credentials("t1", "i2").await.unwrap()[0];
    assert!(matches!(open("t1", "i2", moved), Err(CryptoError::Open)));
    let as_account = SealedField { field: "account".into(), ..token.clone() };
    store.put_credentials("t1", "i1", &[as_account]).await.unwrap();
    let moved = &store.credentials("t1", "i1").await.unwrap()[0];
    assert!(matches!(open("t1", "i1", moved), Err(CryptoError::Open)));
    store.put_credentials("t2", "j1", std::slice::from_ref(&token)).await.unwrap();
    let moved = &store.credentials("t2", "j1").await.unwrap()[0];
    let err = open("t2", "j1", moved).unwrap_err();
    assert!(matches!(err, CryptoError::Open));
    assert!(err.to_string().contains("belongs to another tenant, installation or field"));
}

async fn rotation_reencrypts_everything_online(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    store.create_installation(&new_installation("t2", "j1", "theirs", "notify", "1.0.0")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let keyring = Keyring::load(None, &key_file).unwrap();
    // Another host sharing the key file, loaded before the rotation.
    let other_host = Keyring::load(None, &key_file).unwrap();
    let old_key = keyring.active_key_id().unwrap();

    // More rows than one rotation batch.
    let n = rotation::ROTATION_BATCH as usize + 50;
    let value = |inst: &str, i: usize| format!("secret-{inst}-{i}");
    for (tenant, inst) in [("t1", "i1"), ("t2", "j1")] {
        let fields: Vec<_> = (0..n)
            .map(|i| {
                let field = format!("f{i:03}");
                let s = keyring.seal(tenant, inst, &field, value(inst, i).as_bytes()).unwrap();
                SealedField { field, key_id: s.key_id, ciphertext: s.ciphertext }
            })
            .collect();
        store.put_credentials(tenant, inst, &fields).await.unwrap();
    }

    // An OAuth grant, sealed the same way.
    let seal = |field: &str, v: &str| keyring.seal("t1", "i1", field, v.as_bytes()).unwrap();
    let tokens = NewTokens {
        key_id: old_key.clone(),
        access_token: seal("oauth:access_token", "access-1").ciphertext,
        refresh_token: Some(seal("oauth:refresh_token", "refresh-1").ciphertext),
        token_type: Some("Bearer".into()),
        scope: None,
        expires_at: None,
        refresh_at: None,
    };
    store.store_oauth_grant("t1", "i1", "authorization_code", &tokens).await.unwrap();

    let new_key = keyring.rotate().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(keyring.key_ids().unwrap(), [new_key.clone(), old_key.clone()]);
    // Before re-encryption every stored value still opens under the old key.
    for f in store.credentials("t1", "i1").await.unwrap() {
        assert_eq!(f.key_id, old_key);
        keyring.open("t1", "i1", &f.field, &f.ciphertext).unwrap();
    }

    // A credentials PUT that races the rotation wins over the re-encryption of the old value.
    let stale = store.credentials_not_under(&new_key, 1).await.unwrap().remove(0);
    let fresh = keyring.seal(&stale.tenant, &stale.installation, &stale.field, b"rewritten").unwrap();
    let mut current = store.credentials(&stale.tenant, &stale.installation).await.unwrap();
    for f in current.iter_mut().filter(|f| f.field == stale.field) {
        (f.key_id, f.ciphertext) = (fresh.key_id.clone(), fresh.ciphertext.clone());
    }
    store.put_credentials(&stale.tenant, &stale.installation, &current).await.unwrap();
    assert!(!store.replace_ciphertext(&stale, &new_key, b"lost").await.unwrap(), "the swap must lose");

    let report = rotation::reencrypt_all(&store, &keyring).await.unwrap();
    // `put_credentials` rewrote the whole set of that installation; only the raced field is
    // under the new key already.
    assert_eq!(report.reencrypted, 2 * n as u64 - 1 + 1);
    assert!(store.credentials_not_under(&new_key, 10).await.unwrap().is_empty());
    let g = store.oauth_grant("t1", "i1").await.unwrap().unwrap();
    assert_eq!((g.key_id.as_str(), g.version), (new_key.as_str(), 1));
    assert_eq!(keyring.open("t1", "i1", "oauth:access_token", &g.access_token).unwrap(), b"access-1");
    let refresh = g.refresh_token.as_deref().unwrap();
    assert_eq!(other_host.open("t1", "i1", "oauth:refresh_token", refresh).unwrap(), b"refresh-1");
    for (tenant, inst) in [("t1", "i1"), ("t2", "j1")] {
        for f in store.credentials(tenant, inst).await.unwrap() {
            assert_eq!(f.key_id, new_key);
            let i: usize = f.field[1..].parse().unwrap();
            let expected = if (tenant, inst, f.field.as_str())
                == (stale.tenant.as_str(), stale.installation.as_str(), stale.field.as_str())
            {
                b"rewritten".to_vec()
            } else {
                value(inst, i).into_bytes()
            };
            assert_eq!(keyring.open(tenant, inst, &f.field, &f.ciphertext).unwrap(), expected);
            // The other host picks up the new key from the file on first use.
            assert_eq!(other_host.open(tenant, inst, &f.field, &f.ciphertext).unwrap(), expected);
        }
    }
    assert_eq!(other_host.active_key_id().unwrap(), new_key);
    // Nothing left to do.
    assert_eq!(rotation::reencrypt_all(&store, &keyring).await.unwrap().reencrypted, 0);
}

async fn logs_filter_by_level_time_and_cursor(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    let levels = [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error];
    let records: Vec<_> =
        (0..10).map(|i| log_record("i1", 1_000 + i as i64, levels[i % 5], &format!("m{i}"))).collect();
    store.append_logs(&records).await.unwrap();
    store.append_logs(&[log_record("other", 5, Level::Error, "not mine")]).await.unwrap();
    store.append_logs(&[]).await.unwrap();

    let all =
        store.logs("t1", "i1", &LogQuery { page: PageRequest::first(100), ..Default::default() }).await.unwrap().items;
    assert_eq!(
        all.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[3].level, Level::Warn);
    assert_eq!(all[3].source, "guest");
    assert_eq!(all[3].at_ms, 1_003);
    assert_eq!(all[0].fields, [("k".to_string(), "v".to_string()), ("k".to_string(), "w".to_string())]);

    let warn =
        store.logs("t1", "i1", &LogQuery { min_level: Some(Level::Warn), ..Default::default() }).await.unwrap().items;
    assert_eq!(warn.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["m3", "m4", "m8", "m9"]);
    let since = store.logs("t1", "i1", &LogQuery { since_ms: Some(1_007), ..Default::default() }).await.unwrap().items;
    assert_eq!(since.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["m7", "m8", "m9"]);

    // Page through with the cursor.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .logs("t1", "i1", &LogQuery { page: PageRequest::after(after, 3), ..Default::default() })
            .await
            .unwrap()
            .items;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id);
        pages.push(page.into_iter().map(|r| r.message).collect::<Vec<_>>());
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    assert_eq!(pages.concat(), all.iter().map(|r| r.message.clone()).collect::<Vec<_>>());

    // Many rows in one append (several INSERT statements, one transaction).
    let many: Vec<_> = (0..450).map(|i| log_record("bulk", i, Level::Info, "x")).collect();
    store.append_logs(&many).await.unwrap();
    let page = store
        .logs("t1", "bulk", &LogQuery { page: PageRequest::first(1_000), ..Default::default() })
        .await
        .unwrap()
        .items;
    assert_eq!(page.len(), 450);
}

async fn operation_log_batches_flushes_and_counts_drops(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    let scope = Scope::new("t1", "i1");
    let entry = |i: usize, source: Source| LogEntry {
        at_ms: 1_000 + i as i64,
        level: Level::Info,
        source,
        message: format!("e{i}"),
        fields: vec![("n".into(), i.to_string())],
    };

    let oplog = StoreOperationLog::new(store.clone());
    oplog.append(&scope, vec![entry(0, Source::Guest), entry(1, Source::Http)]);
    oplog.append(&scope, vec![entry(2, Source::Host)]);
    oplog.append(&scope, vec![]);
    oplog.flush().await;
    let logs = store.logs("t1", "i1", &LogQuery::default()).await.unwrap().items;
    assert_eq!(
        logs.iter().map(|r| (r.message.as_str(), r.source.as_str())).collect::<Vec<_>>(),
        [("e0", "guest"), ("e1", "http"), ("e2", "host")]
    );
    assert_eq!(logs[2].fields, [("n".to_string(), "2".to_string())]);
    assert_eq!(oplog.dropped(), 0);

    // The linger timer writes without a flush.
    oplog.append(&scope, vec![entry(3, Source::Stdout)]);
    patchbay_tests::eventually("the linger timer's write", std::time::Duration::from_secs(30), || async {
        let n = store.logs("t1", "i1", &LogQuery::default()).await.unwrap().items.len();
        if n == 4 { Ok(()) } else { Err(format!("{n} entries")) }
    })
    .await;

    // A full queue drops (and counts) instead of blocking the call. The test runs on a
    // current-thread runtime, so the writer cannot drain between these appends. The queue is
    // bounded by entries: a call whose entries do not all fit is shed whole.
    let small = StoreOperationLog::with_config(
        store.clone(),
        OplogConfig { max_queued: 3, max_batch: 100, linger: std::time::Duration::from_secs(60) },
    );
    let scope2 = Scope::new("t1", "i2");
    for i in 0..5 {
        small.append(&scope2, vec![entry(i, Source::Guest), entry(i, Source::Guest)]);
    }
    small.append(&Scope::new("t1", "i3"), vec![entry(9, Source::Guest)]);
    assert_eq!(small.dropped(), 8);
    small.flush().await;
    let stats = small.stats();
    assert_eq!((stats.appended, stats.written, stats.dropped, stats.queued), (11, 3, 8, 0));
    // The installation that lost entries is told so in its own timeline, once, with the count;
    // the other one is not.
    let kept = store.logs("t1", "i2", &LogQuery::default()).await.unwrap().items;
    assert_eq!(kept.len(), 3, "{kept:?}");
    let note = &kept[2];
    assert_eq!((note.level, note.source.as_str()), (Level::Warn, "host"));
    assert!(note.message.starts_with("8 operation log entries of this installation were dropped"), "{note:?}");
    assert!(note.fields.contains(&("dropped".to_string(), "8".to_string())), "{note:?}");
    assert_eq!(store.logs("t1", "i3", &LogQuery::default()).await.unwrap().items.len(), 1);
    // Room again: nothing more is dropped, and no second note is written.
    small.append(&scope2, vec![entry(10, Source::Guest)]);
    small.flush().await;
    assert_eq!(small.dropped(), 8);
    assert_eq!(store.logs("t1", "i2", &LogQuery::default()).await.unwrap().items.len(), 4);
}

async fn state_store_enforces_limits_atomically(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    let state = DurableState::new(store.clone());
    let a = Scope::new("t1", "i1");
    let b = Scope::new("t1", "other");
    let limits = StateLimits { max_key_bytes: 16, max_value_bytes: 32, max_keys: 3, max_total_bytes: 64 };

    state.set(&a, "cursor", "42", &limits).await.unwrap();
    assert_eq!(state.get(&a, "cursor").await.unwrap().as_deref(), Some("42"));
    assert_eq!(state.get(&b, "cursor").await.unwrap(), None, "installations do not share state");
    state.set(&a, "a/x", "1", &limits).await.unwrap();
    state.set(&a, "B", "1", &limits).await.unwrap();
    assert!(matches!(state.set(&a, "d", "1", &limits).await, Err(StateError::TooLarge(_))), "key cap");
    state.set(&a, "cursor", "43", &limits).await.unwrap();
    assert_eq!(state.get(&a, "cursor").await.unwrap().as_deref(), Some("43"), "overwrite at the key cap");
    // Bytes: cursor(6)+43(2) + a/x(3)+1 + B+1 = 14; 64 - 14 + 8 (the old cursor) = 58 bytes left for cursor.
    assert!(matches!(state.set(&a, "cursor", &"v".repeat(53), &limits).await, Err(StateError::TooLarge(_))));
    state.set(&a, "cursor", &"v".repeat(52), &limits).await.unwrap();

    assert_eq!(state.list_keys(&a, "").await.unwrap(), ["B", "a/x", "cursor"], "bytewise order");
    assert_eq!(state.list_keys(&a, "a/").await.unwrap(), ["a/x"]);
    assert!(state.list_keys(&a, "%").await.unwrap().is_empty());
    assert!(state.list_keys(&a, "A").await.unwrap().is_empty(), "prefixes are case-sensitive");
    assert!(state.delete(&a, "B").await.unwrap());
    assert!(!state.delete(&a, "B").await.unwrap());

    // Concurrent writers cannot overshoot the key cap together.
    let c = Scope::new("t1", "race");
    let limits = StateLimits { max_keys: 5, ..limits };
    let writes = (0..20).map(|i| {
        let state = state.clone();
        let c = c.clone();
        tokio::spawn(async move { state.set(&c, &format!("k{i:02}"), "v", &limits).await })
    });
    let results = futures::future::join_all(writes).await;
    let ok = results.into_iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(ok, 5);
    assert_eq!(state.list_keys(&c, "k").await.unwrap().len(), 5);
}

async fn deleting_an_installation_removes_its_data(backend: Backend) {
    let (db, store) = with_installation(backend).await;
    store.put_credentials("t1", "i1", &[sealed("token", b"a")]).await.unwrap();
    store.append_logs(&[log_record("i1", 1, Level::Info, "x")]).await.unwrap();
    let state = DurableState::new(store.clone());
    let scope = Scope::new("t1", "i1");
    state.set(&scope, "k", "v", &StateLimits::default()).await.unwrap();

    assert!(store.delete_installation("t1", "i1").await.unwrap());
    assert_eq!(store.installation("t1", "i1").await.unwrap(), None);
    assert!(store.credentials("t1", "i1").await.unwrap().is_empty());
    assert!(store.logs("t1", "i1", &LogQuery::default()).await.unwrap().items.is_empty());
    assert_eq!(state.get(&scope, "k").await.unwrap(), None);
    for table in ["credentials", "state", "operation_logs", "installations"] {
        assert_eq!(count(&db, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    // The name is free again.
    store.create_installation(&new_installation("t1", "i9", "alerts", "notify", "2.0.0")).await.unwrap();
    let names: BTreeSet<_> = store
        .list_installations("t1", &InstallationFilter::default(), &PageRequest::first(MAX_PAGE))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["alerts"]);
}

/// Not per backend: the key file the keyring creates on first start.
#[test]
fn key_file_is_created_private_and_refused_when_readable() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/master.key");
    let keyring = Keyring::load(None, &path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(keyring.active_key_id().unwrap().len(), 16);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Keyring::load(None, &path).unwrap_err().to_string();
    assert!(err.contains("accessible by group or others") && err.contains("chmod 600"), "{err}");
}

/// SQLite only: `open_sqlite` creates the directory and file (any path) in WAL mode.
#[tokio::test]
async fn open_sqlite_creates_the_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data dir #1/patchbay?.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.create_tenant("t1", "One").await.unwrap();
    assert!(path.is_file());
    store.close().await;
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(store.list_tenants(&PageRequest::first(MAX_PAGE)).await.unwrap().items.len(), 1);
    let url = format!("sqlite://{}", path.display()).replace('#', "%23").replace('?', "%3F").replace(' ', "%20");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
    assert_eq!(mode, "wal");
}

/// SQLite only: under writes with readers always active (which keep a passive checkpoint from
/// ever starting the WAL over), the WAL file stays near its bound, and it is given back once the
/// writes stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_wal_stays_bounded_under_steady_load_and_shrinks_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("patchbay.db");
    let wal = dir.path().join("patchbay.db-wal");
    let bound: u64 = 1024 * 1024;
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let options = patchbay_store::SqliteOptions { wal_restart_bytes: bound, ..Default::default() };
    let store = Store::connect_with(&url, options).await.unwrap();
    store.append_logs(&[log_record("i1", 1, Level::Info, "seed")]).await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let q = LogQuery { page: patchbay_store::PageRequest::first(50), ..Default::default() };
                    store.logs("t1", "i1", &q).await.unwrap();
                }
            })
        })
        .collect();
    // ~48 MiB of entries, 48 times the bound, written steadily: ~128 KiB every few milliseconds.
    let message = "x".repeat(2_000);
    let batch: Vec<_> = (0..64).map(|i| log_record("i1", i, Level::Info, &message)).collect();
    let mut peak = 0;
    for _ in 0..384 {
        store.append_logs(&batch).await.unwrap();
        peak = peak.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    // The bound plus what a checkpoint interval or two write, far below the 48 MiB written.
    assert!(peak < 8 * bound, "the WAL peaked at {peak} bytes");
    patchbay_tests::eventually("the idle WAL is truncated", std::time::Duration::from_secs(20), || async {
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if len == 0 { Ok(()) } else { Err(format!("{len} bytes")) }
    })
    .await;
    let q = LogQuery { page: patchbay_store::PageRequest::first(1_000), ..Default::default() };
    let all = store.logs("t1", "i1", &q).await.unwrap().items;
    assert_eq!(all.len(), 1_000, "nothing written was lost");
}

#[tokio::test]
async fn unsupported_database_urls_are_refused_clearly() {
    match Store::connect("mysql://root:hunter2@localhost/db").await {
        Err(StoreError::Invalid(m)) => {
            assert!(m.contains("use sqlite:PATH or postgres://"), "{m}");
            assert!(!m.contains("hunter2"), "the password is not echoed: {m}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// `sqlite::memory:` gives a private database (one pooled connection), handy for handler tests.
#[tokio::test]
async fn in_memory_sqlite_is_one_private_database() {
    let a = Store::connect("sqlite::memory:").await.unwrap();
    let b = Store::connect("sqlite::memory:").await.unwrap();
    a.create_tenant("t1", "One").await.unwrap();
    let all = PageRequest::first(MAX_PAGE);
    let (listed, other) = tokio::join!(a.list_tenants(&all), b.list_tenants(&all));
    assert_eq!(listed.unwrap().items.len(), 1);
    assert!(other.unwrap().items.is_empty());
    // A transaction and a read on the single connection do not deadlock.
    publish(&a, None, "notify", "1.0.0").await;
    assert_eq!(
        a.list_connectors(Viewer::Operator, &ConnectorFilter::default(), &PageRequest::first(MAX_PAGE))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

/// Pages of installations, connectors and tenants: every row there for the whole walk is read
/// exactly once, in the list's order, while rows are inserted and deleted between pages; a
/// position stays usable after its row is deleted, and only ever selects the caller's rows.
async fn lists_page_by_keyset_through_inserts_and_deletes(backend: Backend) {
    let (_db, store) = with_installation(backend).await;
    for n in 0..24 {
        let name = if n % 2 == 0 { format!("even-{n:02}") } else { format!("odd-{n:02}") };
        store
            .create_installation(&new_installation("t1", &format!("i{n:02}x"), &name, "notify", "1.0.0"))
            .await
            .unwrap();
    }
    store.create_installation(&new_installation("t2", "t2-only", "even-00", "notify", "1.0.0")).await.unwrap();
    let none = InstallationFilter::default();
    let key = |i: &patchbay_store::InstallationRow| (i.created_at_ms, i.id.clone());
    let everything = store.list_installations("t1", &none, &PageRequest::first(MAX_PAGE)).await.unwrap();
    assert!(!everything.more);
    let before: Vec<_> = everything.items.iter().map(key).collect();
    assert_eq!(before.len(), 25);
    assert!(before.windows(2).all(|w| w[0] < w[1]), "ordered by (created_at, id): {before:?}");

    // Walk in pages of 4; after each page delete one row already read and one not yet read, and
    // add one.
    let (mut read, mut page, mut round) = (Vec::new(), PageRequest::first(4), 0);
    let mut deleted = BTreeSet::new();
    loop {
        let got = store.list_installations("t1", &none, &page).await.unwrap();
        assert!(got.items.len() <= 4);
        read.extend(got.items.iter().map(key));
        let Some(last) = got.last_if_more() else { break };
        page.after = Some(key(last));
        round += 1;
        let unread = before.iter().rev().find(|k| !read.contains(k) && !deleted.contains(&k.1)).cloned();
        for (_, id) in [read.first().cloned(), unread].into_iter().flatten() {
            if deleted.insert(id.clone()) {
                assert!(store.delete_installation("t1", &id).await.unwrap());
            }
        }
        let late = new_installation("t1", &format!("late{round}"), &format!("late-{round}"), "notify", "1.0.0");
        store.create_installation(&late).await.unwrap();
    }
    let mut unique = read.clone();
    unique.dedup();
    assert_eq!(unique, read, "no row twice");
    assert!(read.windows(2).all(|w| w[0] < w[1]), "in order: {read:?}");
    for k in &before {
        if !deleted.contains(&k.1) {
            assert!(read.contains(k), "{k:?} was there all along but not read");
        }
    }
    assert!(read.iter().all(|(_, id)| id != "t2-only"));

    // A position whose row is gone still starts the next page right after it.
    let gone = before[10].clone();
    store.delete_installation("t1", &gone.1).await.ok();
    let after_gone = store.list_installations("t1", &none, &PageRequest::after(Some(gone.clone()), 1)).await.unwrap();
    assert!(after_gone.items.iter().all(|i| key(i) > gone));
    assert!(!after_gone.items.is_empty());
    // t1's position used by t2 selects t2's rows only.
    let t2 = store.list_installations("t2", &none, &PageRequest::after(Some((0, String::new())), 10)).await.unwrap();
    assert_eq!(t2.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["t2-only"]);
    let t2 = store.list_installations("t2", &none, &PageRequest::after(Some(before[0].clone()), 10)).await.unwrap();
    assert!(t2.items.iter().all(|i| i.tenant == "t2"));

    // Filters narrow within the order: a name prefix (exact characters, case-sensitive, LIKE's
    // wildcards are plain text), a connector, a status.
    let filtered = |f: InstallationFilter| {
        let store = store.clone();
        async move {
            let page = store.list_installations("t1", &f, &PageRequest::first(MAX_PAGE)).await.unwrap();
            page.items.into_iter().map(|i| i.name).collect::<Vec<_>>()
        }
    };
    let prefix = |p: &str| InstallationFilter { name_prefix: Some(p.into()), ..Default::default() };
    let evens = filtered(prefix("even-")).await;
    assert!(!evens.is_empty() && evens.iter().all(|n| n.starts_with("even-")), "{evens:?}");
    assert_eq!(filtered(prefix("EVEN-")).await, Vec::<String>::new());
    assert_eq!(filtered(prefix("even%")).await, Vec::<String>::new());
    assert_eq!(filtered(prefix("even_")).await, Vec::<String>::new());
    assert_eq!(filtered(prefix("late-1")).await, ["late-1"]);
    let other = InstallationFilter { connector: Some("other".into()), ..Default::default() };
    assert_eq!(filtered(other).await, Vec::<String>::new());
    let errors = InstallationFilter { status: Some("error".into()), ..Default::default() };
    assert_eq!(filtered(errors).await, Vec::<String>::new());
    let active =
        InstallationFilter { status: Some("active".into()), connector: Some("notify".into()), ..Default::default() };
    let all_names = filtered(none.clone()).await;
    assert_eq!(filtered(active).await, all_names);

    // Tenants by id and the catalog by (id, owner), in pages of 1 and 2, as one big page.
    for t in ["t3", "a0", "zz"] {
        store.create_tenant(t, t).await.unwrap();
    }
    let mut ids = Vec::new();
    let mut page = PageRequest::<String>::first(1);
    loop {
        let got = store.list_tenants(&page).await.unwrap();
        ids.extend(got.items.iter().map(|t| t.id.clone()));
        let Some(last) = got.last_if_more() else { break };
        page.after = Some(last.id.clone());
    }
    assert_eq!(ids, ["a0", "t1", "t2", "t3", "zz"]);
    publish(&store, Some("t1"), "notify", "3.0.0").await;
    publish(&store, Some("t1"), "mine", "1.0.0").await;
    publish(&store, Some("t2"), "theirs", "1.0.0").await;
    publish(&store, None, "public", "0.1.0").await;
    publish(&store, None, "public", "0.2.0").await;
    for viewer in [Viewer::Operator, Viewer::Tenant("t1".into()), Viewer::Tenant("t2".into())] {
        let one = store
            .list_connectors(viewer.clone(), &ConnectorFilter::default(), &PageRequest::first(MAX_PAGE))
            .await
            .unwrap()
            .items;
        let mut paged = Vec::new();
        let mut page = PageRequest::<(String, String)>::first(2);
        loop {
            let got = store.list_connectors(viewer.clone(), &ConnectorFilter::default(), &page).await.unwrap();
            paged.extend(got.items.iter().cloned());
            let Some(last) = got.last_if_more() else { break };
            page.after = Some((last.id.clone(), last.owner.clone().unwrap_or_default()));
        }
        assert_eq!(paged, one, "{viewer:?}");
        let public = one.iter().find(|c| c.id == "public").unwrap();
        assert_eq!(public.versions, ["0.2.0", "0.1.0"], "versions ride along with their connector");
    }
}

/// Every change to cached data is logged in its transaction, naming its tenant (`''`: everyone's),
/// a failed write logs nothing, ids only grow, and pruning removes old rows only.
async fn config_changes_name_the_tenant_and_are_pruned(backend: Backend) {
    let (db, store) = with_installation(backend).await;
    let start = store.config_changes_high_water().await.unwrap();
    assert!(start > 0, "the setup's tenants, versions and installation were logged");
    let tenants =
        |changes: Vec<patchbay_store::ConfigChange>| -> Vec<String> { changes.into_iter().map(|c| c.tenant).collect() };
    store
        .update_installation("t1", "i1", &InstallationPatch { enabled: Some(false), ..Default::default() })
        .await
        .unwrap();
    store.put_credentials("t1", "i1", &[sealed("api_key", b"x")]).await.unwrap();
    let key = NewApiKey {
        id: "k2".into(),
        tenant: Some("t2".into()),
        name: "k".into(),
        secret_hash: "h".into(),
        scopes: vec!["view".into()],
    };
    store.create_api_key(&key).await.unwrap();
    assert!(store.revoke_api_key(Some("t2"), "k2").await.unwrap());
    store.create_api_key(&NewApiKey { id: "op2".into(), tenant: None, ..key.clone() }).await.unwrap();
    publish(&store, None, "notify", "3.0.0").await;
    publish(&store, Some("t2"), "private", "1.0.0").await;
    // Refused writes log nothing.
    assert!(store.create_api_key(&key).await.is_err());
    assert!(!store.revoke_api_key(Some("t1"), "k2").await.unwrap());
    let changes = store.config_changes_after(start, 1_000).await.unwrap();
    assert!(changes.windows(2).all(|w| w[0].id < w[1].id), "{changes:?}");
    let seen: BTreeSet<String> = tenants(changes.clone()).into_iter().collect();
    assert_eq!(seen, ["", "t1", "t2"].map(String::from).into_iter().collect(), "{changes:?}");
    let t1 = changes.iter().filter(|c| c.tenant == "t1").count();
    assert!(t1 >= 2, "disabling and new credentials: {changes:?}");
    // Reading after an id pages; the limit holds.
    let first = store.config_changes_after(start, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(store.config_changes_after(first[0].id, 1_000).await.unwrap(), changes[1..].to_vec());

    // Pruning keeps what is newer than the cut, and the ids go on growing after it.
    let high = store.config_changes_high_water().await.unwrap();
    assert_eq!(store.prune_config_changes(0).await.unwrap(), 0);
    let pruned = store.prune_config_changes(patchbay_core::now_ms() + 60_000).await.unwrap();
    assert!(pruned as i64 >= high - start, "{pruned} pruned");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM config_changes").await, 0);
    assert!(store.config_changes_after(0, 10).await.unwrap().is_empty());
    store
        .update_installation("t1", "i1", &InstallationPatch { enabled: Some(true), ..Default::default() })
        .await
        .unwrap();
    let after = store.config_changes_after(high, 10).await.unwrap();
    assert_eq!(tenants(after.clone()), vec!["t1".to_string()]);
    assert!(after[0].id > high, "{after:?} after {high}");
}

/// The benchmarks' large-store fill writes rows the host's own queries read, in chunks, adding
/// up over repeated fills, and only for the installation named.
async fn bulk_fill_writes_rows_the_host_reads(backend: Backend) {
    let (db, store) = with_installation(backend).await;
    assert_eq!(store.fill(Fill::Events, "t1", "i1", 1_000).await.unwrap(), 1_000);
    assert_eq!(store.fill(Fill::Events, "t1", "i1", 500).await.unwrap(), 500);
    let n = FILL_CHUNK + 7;
    assert_eq!(store.fill(Fill::Logs, "t1", "i1", n).await.unwrap(), n);
    store.fill(Fill::Records, "t1", "i1", 1_000).await.unwrap();
    store.fill(Fill::Records, "t1", "i1", 1_000).await.unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events WHERE tenant = 't1'").await, 1_500);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'").await, 1_500);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_logs").await, n as i64);
    assert_eq!(store.record_stats("i1", "fill").await.unwrap(), (2_000, 0, 2_000));
    let events = store.list_events("t1", &Default::default()).await.unwrap();
    assert!(events.more && events.items[0].event_type == "fill.sample", "{:?}", events.items.first());
    let logs = store.logs("t1", "i1", &LogQuery::default()).await.unwrap();
    assert!(logs.more && logs.items[0].message == "filled entry");
    assert!(store.list_events("t2", &Default::default()).await.unwrap().items.is_empty());
}

/// The names of `table`'s indexes that the schema names itself (not those a primary key or a
/// UNIQUE constraint makes), sorted, and how many indexes it has in all.
async fn indexes(db: &TestDb, backend: Backend, table: &str) -> (Vec<String>, usize) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1",
        Backend::Postgres => {
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1"
        }
    };
    let all: Vec<String> = sqlx::query_scalar(sql).bind(table).fetch_all(&pool).await.unwrap();
    pool.close().await;
    let made = |n: &String| n.starts_with("sqlite_autoindex_") || n.ends_with("_pkey") || n.ends_with("_key");
    let mut named: Vec<String> = all.iter().filter(|n| !made(n)).cloned().collect();
    named.sort();
    (named, all.len())
}

/// Every index on the write-heavy outbox tables is one more b-tree written per webhook (and per
/// claim and settlement): the tables carry exactly the indexes their queries use, and every hot
/// query and cascade lookup is served by one — on SQLite without a full scan or a sort, which the
/// old index set made the planner choose for the claim.
async fn outbox_tables_carry_the_fewest_indexes_and_every_hot_query_uses_one(backend: Backend) {
    let (db, store) = with_installation(backend).await;
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // SQLite keeps one index per table for the cascade from a deleted installation (see its
    // migration 0011); PostgreSQL serves it by the unique indexes.
    let (requests, events) = match backend {
        Backend::Sqlite => (
            vec![
                "ingress_requests_dedupe_age",
                "ingress_requests_tenant_installation",
                "ingress_requests_tenant_received",
            ],
            vec!["events_ingress", "events_tenant_created", "events_tenant_source_created"],
        ),
        Backend::Postgres => (
            vec!["ingress_requests_dedupe_age", "ingress_requests_tenant_received"],
            vec!["events_ingress", "events_tenant_created"],
        ),
    };
    // The unique indexes: the primary key and the idempotency key, and on SQLite (tenant, id) for
    // the deliveries' foreign key (PostgreSQL's names the event by id: migration 0012).
    let events_unique = if backend == Backend::Sqlite { 3 } else { 2 };
    assert_eq!(indexes(&db, backend, "ingress_requests").await, (names(&requests), requests.len() + 2));
    assert_eq!(indexes(&db, backend, "events").await, (names(&events), events.len() + events_unique));
    if backend == Backend::Postgres {
        foreign_key_checks_take_a_unique_index(&db).await;
    }
    assert_eq!(
        indexes(&db, backend, "deliveries").await,
        (names(&["deliveries_dead", "deliveries_destination", "deliveries_due", "deliveries_event"]), 6)
    );
    store.fill(Fill::Events, "t1", "i1", 2_000).await.unwrap();
    let analyzed = store.refresh_statistics(true).await.unwrap();
    if backend == Backend::Postgres {
        statistics_follow_the_writes(&db, &store, analyzed).await;
    }
    let plans = store.explain_outbox_queries("t1", "i1").await.unwrap();
    assert_eq!(plans.len(), 9, "{plans:?}");
    if backend != Backend::Sqlite {
        // PostgreSQL plans small tables by cost (a sequential scan may be cheapest); they are
        // produced, which checks the statements, and read in docs/architecture.md.
        assert!(plans.iter().all(|(_, p)| !p.is_empty()), "{plans:?}");
        return;
    }
    let plan = |name: &str| plans.iter().find(|(n, _)| *n == name).map(|(_, p)| p.clone()).unwrap();
    for (name, p) in &plans {
        for line in p.lines().filter(|l| l.starts_with("SCAN ") || l.starts_with("SEARCH ")) {
            assert!(line.contains(" INDEX "), "{name}: a full scan: {p}");
        }
        assert!(!p.contains("TEMP B-TREE"), "{name}: a sort: {p}");
    }
    assert!(plan("claim").contains("deliveries_due"), "{}", plan("claim"));
    assert!(plan("next due").contains("deliveries_due"), "{}", plan("next due"));
    assert!(plan("outbox depth").contains("deliveries_dead"), "{}", plan("outbox depth"));
    assert!(plan("events of an installation").contains("deliveries_event"), "{}", plan("events of an installation"));
    assert!(plan("cascade: requests").contains("(tenant=? AND installation=?)"), "{}", plan("cascade: requests"));
    assert!(plan("cascade: events").contains("(tenant=? AND source_installation=?)"), "{}", plan("cascade: events"));
    assert!(plan("cascade: deliveries").contains("deliveries_destination"), "{}", plan("cascade: deliveries"));
    assert!(
        plan("cascade: an event's deliveries").contains("deliveries_event"),
        "{}",
        plan("cascade: an event's deliveries")
    );
    assert!(plan("foreign key: a delivery's event").contains("INDEX"), "{}", plan("foreign key: a delivery's event"));
}

/// On PostgreSQL the tables the fill changed by more than 50 rows + 10 % are analyzed (what
/// autovacuum would do; databases run without it), the others are left alone. The server
/// publishes a connection's row counts within about a second of its commit, hence the retries.
async fn statistics_follow_the_writes(db: &TestDb, store: &Store, mut analyzed: Vec<String>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !analyzed.iter().any(|t| t == "events") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        analyzed.extend(store.refresh_statistics(true).await.unwrap());
    }
    for table in ["events", "deliveries"] {
        assert!(analyzed.iter().any(|t| t == table), "{table} not analyzed: {analyzed:?}");
    }
    assert!(!analyzed.iter().any(|t| t == "installations" || t == "tenants"), "{analyzed:?}");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let (tuples, stale): (f64, i64) = sqlx::query_as(
        "SELECT c.reltuples::float8, s.n_mod_since_analyze FROM pg_class c \
         JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE s.schemaname = current_schema() AND s.relname = 'events'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((tuples, stale), (2_000.0, 0));
    // Nothing changed since: a second call analyzes nothing.
    assert_eq!(store.refresh_statistics(true).await.unwrap(), Vec::<String>::new());
    pool.close().await;
}

/// PostgreSQL checks a foreign key with a query it plans once per connection and keeps. On tables
/// without statistics (a new database: these are empty) a check of `tenant = $1 AND id = $2`
/// cost the same through UNIQUE (tenant, id) as through walking events_tenant_created over all of
/// the tenant's events, and a connection that chose the walk kept it (three quarters of the
/// database's CPU during ingest). Every foreign key from one ingest table to another is planned
/// here as the check is — a generic plan, no statistics — and must be answered by a unique index.
async fn foreign_key_checks_take_a_unique_index(db: &TestDb) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conname::text, p.relname::text, \
                string_agg(a.attname::text, ',' ORDER BY k.n) \
         FROM pg_constraint c \
         JOIN pg_class r ON r.oid = c.conrelid JOIN pg_class p ON p.oid = c.confrelid \
         JOIN pg_namespace ns ON ns.oid = r.relnamespace \
         CROSS JOIN LATERAL unnest(c.confkey) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum \
         WHERE c.contype = 'f' AND ns.nspname = current_schema() \
           AND r.relname IN ('ingress_requests', 'events', 'deliveries') \
           AND p.relname IN ('ingress_requests', 'events', 'deliveries') \
         GROUP BY c.conname, p.relname ORDER BY c.conname",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let found: Vec<(&str, &str)> = keys.iter().map(|(_, p, c)| (p.as_str(), c.as_str())).collect();
    assert_eq!(found, [("events", "id"), ("ingress_requests", "id")], "{keys:?}");
    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    for (n, (name, parent, columns)) in keys.iter().enumerate() {
        let cols: Vec<&str> = columns.split(',').collect();
        let conds: Vec<String> = cols.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
        let types = vec!["text"; cols.len()].join(", ");
        let check = format!("SELECT 1 FROM ONLY {parent} x WHERE {} FOR KEY SHARE OF x", conds.join(" AND "));
        sqlx::query(&format!("PREPARE fk{n} ({types}) AS {check}")).execute(&mut *conn).await.unwrap();
        let values = vec!["'x'"; cols.len()].join(", ");
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN EXECUTE fk{n} ({values})")).fetch_all(&mut *conn).await.unwrap();
        let plan = plan.join("\n");
        let index = plan.split(" using ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or_default();
        let unique: Option<bool> = sqlx::query_scalar(
            "SELECT i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace ns ON ns.oid = c.relnamespace \
             WHERE c.relname = $1 AND ns.nspname = current_schema()",
        )
        .bind(index)
        .fetch_optional(&mut *conn)
        .await
        .unwrap();
        assert_eq!(unique, Some(true), "{name}: {check}\n{plan}");
    }
    drop(conn);
    pool.close().await;
}
