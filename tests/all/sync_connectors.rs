//! The data-sync reference connectors (`csv-source`, `rest-source`, `airtable`) run as real
//! components against the local source server (`patchbay_tests::sources`): full reads,
//! resuming from a cursor, limits, every pagination style, incremental reads, item errors,
//! error mapping, CSV edge cases and streaming, and Airtable writes.

use std::collections::BTreeMap;
use std::time::Instant;

use patchbay_runtime::Installation;
use patchbay_runtime::LoadedComponent;
use patchbay_runtime::calls::invoke_json;
use patchbay_tests::components;
use patchbay_tests::sources::{AIRTABLE_MODIFIED, Dataset, SourceServer};
use serde_json::{Value, json};

use crate::harness::{Host, installation};

/// A connector loaded into a runtime that may reach 127.0.0.1.
struct Connector {
    host: Host,
    component: std::sync::Arc<LoadedComponent>,
}

impl Connector {
    fn load(path: &str) -> Connector {
        let host = Host::new(&["127.0.0.1/32"]);
        let component = host.load(path);
        Connector { host, component }
    }

    async fn call(&self, inst: &Installation, op: &str, input: Value) -> Value {
        let report = invoke_json(&self.host.runtime, &self.component, inst, op, input).await.unwrap();
        report.outcome.unwrap_or_else(|e| panic!("{op} failed in the host: {e:?}"))
    }

    /// One `read-batch`; the whole `{"ok": …}` / `{"err": …}` answer.
    async fn read(&self, inst: &Installation, entity: &str, mode: &str, cursor: Option<&str>, limit: u32) -> Value {
        let req = json!({"req": {"entity": entity, "mode": mode, "cursor": cursor, "limit": limit}});
        self.call(inst, "sync.read-batch", req).await
    }

    /// Reads batches from `cursor` until `done`.
    async fn read_all(&self, inst: &Installation, entity: &str, mode: &str, cursor: Option<String>, limit: u32) -> Run {
        let mut run = Run { cursor, ..Run::default() };
        for _ in 0..10_000 {
            let out = self.read(inst, entity, mode, run.cursor.as_deref(), limit).await;
            let batch = out.get("ok").unwrap_or_else(|| panic!("read-batch failed: {out}"));
            let records = batch["records"].as_array().unwrap();
            assert!(records.len() <= limit as usize, "limit {limit}, got {}", records.len());
            for r in records {
                let data: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
                run.records.push((r["id"].as_str().unwrap().to_string(), data, r["deleted"].as_bool().unwrap()));
            }
            run.errors.extend(batch["errors"].as_array().unwrap().iter().cloned());
            run.batches += 1;
            run.cursor = batch["next-cursor"].as_str().map(str::to_string);
            if batch["done"].as_bool().unwrap() {
                return run;
            }
        }
        panic!("read never finished");
    }
}

#[derive(Default, Debug)]
struct Run {
    records: Vec<(String, Value, bool)>,
    errors: Vec<Value>,
    cursor: Option<String>,
    batches: usize,
}

impl Run {
    fn ids(&self) -> Vec<String> {
        self.records.iter().map(|(id, _, _)| id.clone()).collect()
    }

    fn id_data(&self) -> Vec<(String, Value)> {
        self.records.iter().map(|(id, data, _)| (id.clone(), data.clone())).collect()
    }
}

fn err_kind(out: &Value) -> (&str, &Value) {
    let err = out.get("err").and_then(Value::as_object).unwrap_or_else(|| panic!("expected an error: {out}"));
    let (kind, detail) = err.iter().next().unwrap();
    (kind.as_str(), detail)
}

#[test]
fn data_sync_connectors_carry_valid_manifests() {
    let limits = patchbay_registry::PackageLimits::default();
    for (path, id, hosts) in [
        (components::CSV_SOURCE, "csv-source", vec!["{{config.url}}"]),
        (components::REST_SOURCE, "rest-source", vec!["{{config.base_url}}"]),
        (components::AIRTABLE, "airtable", vec!["https://api.airtable.com", "{{config.api_url}}"]),
    ] {
        let package = patchbay_registry::inspect(&std::fs::read(path).unwrap(), &limits).unwrap();
        assert_eq!(package.manifest.id, id);
        assert_eq!(package.manifest.category, patchbay_registry::Category::DataSync);
        assert_eq!(package.manifest.allowed_hosts, hosts);
    }
}

// ---------------------------------------------------------------------------------------------
// csv-source

fn csv_install(server: &SourceServer, path: &str) -> patchbay_runtime::Installation {
    installation("csv").config("url", &server.url(path)).allow("{{config.url}}").build()
}

/// Every `Range` request as (offset, length).
fn ranges(server: &SourceServer, path: &str) -> Vec<(u64, u64)> {
    server
        .requests_to(path)
        .iter()
        .filter_map(|r| {
            let spec = r.range.as_deref()?.strip_prefix("bytes=")?;
            let (a, b) = spec.split_once('-')?;
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            Some((a, b - a + 1))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_reads_a_large_file_exactly_in_bounded_ranges() {
    let server = SourceServer::start(Dataset::new(6_000, 300, 11));
    let file_len = server.csv_bytes().len() as u64;
    let c = Connector::load(components::CSV_SOURCE);
    let inst = csv_install(&server, "/files/data.csv");
    let run = c.read_all(&inst, "rows", "full", None, 250).await;
    let expected: Vec<(String, Value)> = server.dataset().expected_csv().collect();
    assert_eq!(run.records.len(), expected.len());
    assert_eq!(run.id_data(), expected, "rows differ from the dataset");
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    // Streamed: one bounded range per batch, together about the file once.
    let seen = ranges(&server, "/files/data.csv");
    assert_eq!(seen.len(), run.batches, "one request per batch");
    assert!(seen.iter().all(|&(_, len)| len <= 256 * 1024), "{seen:?}");
    let requested: u64 = seen.iter().map(|&(_, len)| len).sum();
    assert!(requested < 2 * file_len, "requested {requested} bytes of a {file_len}-byte file");
    // Each range starts where the previous batch stopped.
    let cursor: Value = serde_json::from_str(run.cursor.as_deref().unwrap()).unwrap();
    assert_eq!(cursor["o"], file_len);
    assert_eq!(cursor["h"], json!(["id", "name", "version", "updated_at", "padding"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_resumes_exactly_from_a_cursor_in_the_middle() {
    let server = SourceServer::start(Dataset::new(700, 200, 5));
    let c = Connector::load(components::CSV_SOURCE);
    let inst = csv_install(&server, "/files/data.csv");
    let mut cursor = None;
    let mut first = Vec::new();
    for _ in 0..3 {
        let out = c.read(&inst, "rows", "full", cursor.as_deref(), 90).await;
        for r in out["ok"]["records"].as_array().unwrap() {
            first.push(r["id"].as_str().unwrap().to_string());
        }
        cursor = out["ok"]["next-cursor"].as_str().map(str::to_string);
    }
    assert_eq!(first.len(), 270);
    // The same cursor twice, in fresh sandboxes, gives the same batch.
    let a = c.read(&inst, "rows", "full", cursor.as_deref(), 90).await;
    let b = c.read(&inst, "rows", "full", cursor.as_deref(), 90).await;
    assert_eq!(a, b);
    let rest = c.read_all(&inst, "rows", "full", cursor, 90).await;
    let mut all = first;
    all.extend(rest.ids());
    let expected: Vec<String> = server.dataset().expected().map(|(id, _)| id).collect();
    assert_eq!(all, expected, "no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_quoting_edge_cases_compound_keys_and_item_errors() {
    let server = SourceServer::start(Dataset::new(0, 100, 1));
    let file = "\u{feff}org;id;note\r\n\
                acme;1;\"semi;colon\"\r\n\
                acme;2;\"say \"\"hi\"\"\"\n\
                \n\
                acme;3;\"two\r\nlines\"\r\n\
                acme;4\r\n\
                ;5;no org\r\n\
                beta;6;\"Zoë ✓\"\r\n\
                beta;7;last, without newline";
    server.put_file("/files/edge.csv", file, true);
    let c = Connector::load(components::CSV_SOURCE);
    let inst = installation("csv")
        .config("url", &server.url("/files/edge.csv"))
        .config("delimiter", ";")
        .config("primary_key", "org,id")
        .config("entity", "notes")
        .allow("{{config.url}}")
        .build();
    for limit in [1, 2, 100] {
        let run = c.read_all(&inst, "notes", "full", None, limit).await;
        let got: BTreeMap<String, Value> = run.id_data().into_iter().collect();
        assert_eq!(run.ids(), ["acme/1", "acme/2", "acme/3", "beta/6", "beta/7"], "limit {limit}");
        assert_eq!(got["acme/1"], json!({"org": "acme", "id": "1", "note": "semi;colon"}));
        assert_eq!(got["acme/2"]["note"], "say \"hi\"");
        assert_eq!(got["acme/3"]["note"], "two\r\nlines");
        assert_eq!(got["beta/6"]["note"], "Zoë ✓");
        assert_eq!(got["beta/7"]["note"], "last, without newline");
        assert_eq!(run.errors.len(), 2, "{:?}", run.errors);
        let first = run.errors[0]["message"].as_str().unwrap();
        assert!(first.contains("line 7") && first.contains("expected 3 fields, found 2"), "{first}");
        assert!(run.errors[1]["message"].as_str().unwrap().contains("primary key is empty"), "{:?}", run.errors);
    }
    // A key column the header lacks is a configuration error.
    let bad = installation("csv")
        .config("url", &server.url("/files/edge.csv"))
        .config("delimiter", ";")
        .config("primary_key", "uuid")
        .allow("{{config.url}}")
        .build();
    let out = c.read(&bad, "rows", "full", None, 10).await;
    let (kind, detail) = err_kind(&out);
    assert_eq!(kind, "permanent");
    assert!(detail["message"].as_str().unwrap().contains("`uuid`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_works_with_a_server_that_ignores_range() {
    let server = SourceServer::start(Dataset::new(400, 150, 2));
    let c = Connector::load(components::CSV_SOURCE);
    let run = c.read_all(&csv_install(&server, "/files/norange.csv"), "rows", "full", None, 150).await;
    let expected: Vec<(String, Value)> = server.dataset().expected_csv().collect();
    assert_eq!(run.id_data(), expected);
    assert!(server.requests_to("/files/norange.csv").iter().all(|r| r.status == 200));
    // Past the end of a Range-honouring server: 416, done with nothing.
    let inst = csv_install(&server, "/files/data.csv");
    let past = json!({"o": server.csv_bytes().len() + 10, "h": ["id", "name", "version", "updated_at", "padding"]});
    let out = c.read(&inst, "rows", "full", Some(&past.to_string()), 10).await;
    assert_eq!(out["ok"]["done"], true, "{out}");
    assert_eq!(out["ok"]["records"], json!([]));
    assert_eq!(server.requests().last().unwrap().status, 416);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_maps_errors_and_refuses_writes() {
    let server = SourceServer::start(Dataset::new(20, 100, 3));
    let c = Connector::load(components::CSV_SOURCE);
    let inst = csv_install(&server, "/files/data.csv");
    server.fail_next(1, 429, Some("1"));
    let out = c.read(&inst, "rows", "full", None, 10).await;
    assert_eq!(
        err_kind(&out),
        ("rate-limited", &json!({"retry-after-ms": 1000, "message": err_kind(&out).1["message"]}))
    );
    server.fail_next(1, 503, None);
    assert_eq!(err_kind(&c.read(&inst, "rows", "full", None, 10).await).0, "retryable");
    let out = c.read(&inst, "other", "full", None, 10).await;
    assert_eq!(err_kind(&out).0, "permanent");
    assert!(out.to_string().contains("`other`"), "{out}");
    // A token-protected file: without the secret unauthorized, with it the rows.
    server.require_token(Some("csv-token-123"));
    assert_eq!(err_kind(&c.read(&inst, "rows", "full", None, 10).await).0, "unauthorized");
    let with_token = installation("csv")
        .config("url", &server.url("/files/data.csv"))
        .secret("token", "csv-token-123")
        .allow("{{config.url}}")
        .build();
    let out = c.read(&with_token, "rows", "full", None, 10).await;
    assert_eq!(out["ok"]["records"].as_array().unwrap().len(), 10, "{out}");
    assert_eq!(server.requests().last().unwrap().authorization.as_deref(), Some("Bearer csv-token-123"));
    assert!(!c.host.log_text(&with_token).contains("csv-token-123"));
    let write = json!({"req": {"entity": "rows", "records": [{"local-id": "1", "external-id": null, "op": "upsert", "data": "{}"}]}});
    let out = c.call(&inst, "sync.write-batch", write).await;
    assert_eq!(err_kind(&out).0, "permanent");
    let entities = c.call(&inst, "sync.list-entities", json!({})).await;
    assert_eq!(entities["ok"][0]["name"], "rows");
    assert_eq!(entities["ok"][0]["supports-write"], false);
}

// ---------------------------------------------------------------------------------------------
// rest-source

fn rest_install(server: &SourceServer, path: &str, extra: &[(&str, &str)]) -> Installation {
    let mut b =
        installation("rest").config("base_url", &server.base_url()).config("path", path).allow("{{config.base_url}}");
    for (k, v) in extra {
        b = b.config(k, v);
    }
    b.build()
}

fn style(name: &str) -> (&'static str, Vec<(&'static str, &'static str)>) {
    match name {
        "page" => ("/rest/page", vec![("pagination", "page"), ("record_path", "data"), ("total_path", "meta.total")]),
        "offset" => {
            ("/rest/offset", vec![("pagination", "offset"), ("record_path", "data"), ("total_path", "meta.total")])
        }
        "cursor" => (
            "/rest/cursor",
            vec![("pagination", "cursor"), ("record_path", "data"), ("next_cursor_path", "meta.next_cursor")],
        ),
        "link" => ("/rest/link", vec![("pagination", "link")]),
        _ => ("/rest/all", vec![("pagination", "none"), ("record_path", "data")]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_reads_the_dataset_in_every_pagination_style() {
    let server = SourceServer::start(Dataset::new(1_234, 256, 21));
    let expected: Vec<(String, Value)> = server.dataset().expected().collect();
    let c = Connector::load(components::REST_SOURCE);
    for name in ["page", "offset", "cursor", "link", "none"] {
        let (path, config) = style(name);
        let inst = rest_install(&server, path, &config);
        let run = c.read_all(&inst, path.rsplit('/').next().unwrap(), "full", None, 250).await;
        assert_eq!(run.id_data(), expected, "{name}");
        assert!(run.errors.is_empty(), "{name}: {:?}", run.errors);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_limits_requests_per_batch_and_totals() {
    let server = SourceServer::start(Dataset::new(2_500, 128, 4));
    let c = Connector::load(components::REST_SOURCE);
    let (path, config) = style("offset");
    let inst = rest_install(&server, path, &config);
    let out = c.read(&inst, "offset", "full", None, 1000).await;
    assert_eq!(out["ok"]["records"].as_array().unwrap().len(), 1000);
    assert_eq!(out["ok"]["total"], 2500);
    let asked = server.requests_to("/rest/offset");
    assert_eq!(asked.len(), 10, "1000 records in pages of 100");
    assert!(asked.iter().all(|r| r.param("limit").as_deref() == Some("100")));
    // A limit below the page size asks for that many.
    server.clear_requests();
    let out = c.read(&inst, "offset", "full", None, 30).await;
    assert_eq!(out["ok"]["records"].as_array().unwrap().len(), 30);
    assert_eq!(server.requests_to("/rest/offset")[0].param("limit").as_deref(), Some("30"));
    // Page pagination with a limit that is not a multiple of the page size stays exact.
    let (path, config) = style("page");
    let inst = rest_install(&server, path, &config);
    let run = c.read_all(&inst, "page", "full", None, 150).await;
    let expected: Vec<String> = server.dataset().expected().map(|(id, _)| id).collect();
    assert_eq!(run.ids(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_resumes_exactly_from_a_cursor_in_the_middle() {
    let server = SourceServer::start(Dataset::new(800, 200, 8));
    let expected: Vec<String> = server.dataset().expected().map(|(id, _)| id).collect();
    let c = Connector::load(components::REST_SOURCE);
    for name in ["cursor", "link", "page"] {
        let (path, config) = style(name);
        let entity = path.rsplit('/').next().unwrap();
        let inst = rest_install(&server, path, &config);
        let mut cursor = None;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let out = c.read(&inst, entity, "full", cursor.as_deref(), 170).await;
            ids.extend(out["ok"]["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
            cursor = out["ok"]["next-cursor"].as_str().map(str::to_string);
        }
        let again_a = c.read(&inst, entity, "full", cursor.as_deref(), 170).await;
        let again_b = c.read(&inst, entity, "full", cursor.as_deref(), 170).await;
        assert_eq!(again_a, again_b, "{name}: the same cursor gives the same batch");
        let rest = c.read_all(&inst, entity, "full", cursor, 170).await;
        ids.extend(rest.ids());
        assert_eq!(ids, expected, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_incremental_reads_only_what_changed() {
    let dataset = Dataset::new(500, 200, 9);
    let server = SourceServer::start(dataset.clone());
    let c = Connector::load(components::REST_SOURCE);
    let (path, mut config) = style("cursor");
    config.extend([("cursor_field", "updated_at"), ("since_param", "updated_since"), ("deleted_field", "deleted")]);
    let inst = rest_install(&server, path, &config);
    let entities = c.call(&inst, "sync.list-entities", json!({})).await;
    assert_eq!(entities["ok"][0]["supports-incremental"], true, "{entities}");
    assert_eq!(entities["ok"][0]["cursor-field"], "updated_at");

    let first = c.read_all(&inst, "cursor", "incremental", None, 120).await;
    assert_eq!(first.records.len(), 500);
    let watermark: Value = serde_json::from_str(first.cursor.as_deref().unwrap()).unwrap();
    assert_eq!(watermark, json!({"w": dataset.max_updated_at()}));

    for i in [3, 250, 499] {
        dataset.update(i);
    }
    for i in [10, 11] {
        dataset.delete(i);
    }
    let added = dataset.insert_more(4);
    let second = c.read_all(&inst, "cursor", "incremental", first.cursor.clone(), 120).await;
    let mut got: Vec<(String, bool)> = second.records.iter().map(|(id, _, deleted)| (id.clone(), *deleted)).collect();
    got.sort();
    let mut want: Vec<(String, bool)> = [3, 250, 499].iter().map(|&i| (Dataset::id(i), false)).collect();
    want.extend([10, 11].iter().map(|&i| (Dataset::id(i), true)));
    want.extend(added.map(|i| (Dataset::id(i), false)));
    want.sort();
    assert_eq!(got, want);
    let updated = second.records.iter().find(|(id, _, _)| *id == Dataset::id(250)).unwrap();
    assert_eq!(updated.1["version"], 2);
    assert!(server.requests_to("/rest/cursor").last().unwrap().param("updated_since").is_some());

    // Nothing changed since: an empty run, the watermark stays.
    let third = c.read_all(&inst, "cursor", "incremental", second.cursor.clone(), 120).await;
    assert!(third.records.is_empty());
    assert_eq!(third.cursor, second.cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_item_errors_do_not_stop_the_batch() {
    let server = SourceServer::start(Dataset::new(0, 100, 1));
    let body = json!({"items": [
        {"id": 1, "org": {"id": "a"}},
        {"name": "no id"},
        "not an object",
        {"id": 2, "org": {"id": "b"}, "archived": "true"},
        {"id": null, "org": {"id": "c"}},
        {"id": 3, "org": {"id": "c"}}
    ]});
    server.put_file("/custom/items", body.to_string(), false);
    let c = Connector::load(components::REST_SOURCE);
    let inst = rest_install(
        &server,
        "/custom/items",
        &[
            ("pagination", "none"),
            ("record_path", "items"),
            ("primary_key", "org.id, id"),
            ("deleted_field", "archived"),
        ],
    );
    let run = c.read_all(&inst, "items", "full", None, 100).await;
    let got: Vec<(&str, bool)> = run.records.iter().map(|(id, _, d)| (id.as_str(), *d)).collect();
    assert_eq!(got, [("a/1", false), ("b/2", true), ("c/3", false)]);
    assert_eq!(run.errors.len(), 3, "{:?}", run.errors);
    assert!(run.errors[0]["message"].as_str().unwrap().contains("no primary key field `org.id`"), "{:?}", run.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_maps_errors() {
    let server = SourceServer::start(Dataset::new(50, 100, 1));
    let c = Connector::load(components::REST_SOURCE);
    let (path, config) = style("page");
    let inst = rest_install(&server, path, &config);
    server.fail_next(1, 429, Some("1"));
    let out = c.read(&inst, "page", "full", None, 10).await;
    assert_eq!(err_kind(&out).0, "rate-limited");
    assert_eq!(err_kind(&out).1["retry-after-ms"], 1000);
    server.fail_next(1, 429, None);
    assert_eq!(err_kind(&c.read(&inst, "page", "full", None, 10).await).1["retry-after-ms"], 30_000);
    // Three 500s: three retryable failures, then the batch.
    server.fail_next(3, 500, None);
    for _ in 0..3 {
        assert_eq!(err_kind(&c.read(&inst, "page", "full", None, 10).await).0, "retryable");
    }
    assert!(c.read(&inst, "page", "full", None, 10).await["ok"].is_object());
    server.fail_next(1, 404, None);
    assert_eq!(err_kind(&c.read(&inst, "page", "full", None, 10).await).0, "permanent");
    assert_eq!(err_kind(&c.read(&inst, "nope", "full", None, 10).await).0, "permanent");
    // Bearer token: unauthorized without the secret, read with it.
    server.require_token(Some("rest-key-987"));
    assert_eq!(err_kind(&c.read(&inst, "page", "full", None, 10).await).0, "unauthorized");
    let mut b = installation("rest")
        .config("base_url", &server.base_url())
        .config("path", path)
        .secret("api_key", "rest-key-987")
        .allow("{{config.base_url}}");
    for (k, v) in &config {
        b = b.config(k, v);
    }
    let keyed = b.build();
    assert!(c.read(&keyed, "page", "full", None, 10).await["ok"].is_object());
    assert_eq!(server.requests().last().unwrap().authorization.as_deref(), Some("Bearer rest-key-987"));
    assert!(!c.host.log_text(&keyed).contains("rest-key-987"));
}

/// Records per second through rest-source (1 KB records, pages of 100, batches of 1000), the
/// figure the host's sync benchmark builds on. Printed with `--nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_throughput_with_1kb_records() {
    let server = SourceServer::start(Dataset::new(20_000, 1024, 1));
    let c = Connector::load(components::REST_SOURCE);
    let (path, config) = style("offset");
    let inst = rest_install(&server, path, &config);
    // Warm the component and the server.
    c.read(&inst, "offset", "full", None, 100).await;
    let started = Instant::now();
    let run = c.read_all(&inst, "offset", "full", None, 1000).await;
    let elapsed = started.elapsed();
    assert_eq!(run.records.len(), 20_000);
    let rate = run.records.len() as f64 / elapsed.as_secs_f64();
    println!("rest-source: {} records of 1 KB in {elapsed:?} = {rate:.0} records/s (debug build)", run.records.len());
}

// ---------------------------------------------------------------------------------------------
// airtable

const BASE: &str = "appTEST1234567890";

fn airtable_install(server: &SourceServer, extra: &[(&str, &str)]) -> Installation {
    let mut b = installation("airtable")
        .config("base_id", BASE)
        .config("tables", "Tasks, Other Table")
        .config("api_url", &server.base_url())
        .secret("token", "patTEST.secret-token")
        .allow("{{config.api_url}}");
    for (k, v) in extra {
        b = b.config(k, v);
    }
    b.build()
}

fn airtable_server(n: usize) -> SourceServer {
    let server = SourceServer::start(Dataset::new(n, 200, 13));
    server.airtable_seed(BASE, "Tasks", n);
    server.airtable_seed(BASE, "Other Table", 3);
    server.require_token(Some("patTEST.secret-token"));
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airtable_reads_tables_page_by_page_and_resumes() {
    let server = airtable_server(250);
    let c = Connector::load(components::AIRTABLE);
    let inst = airtable_install(&server, &[]);
    let entities = c.call(&inst, "sync.list-entities", json!({})).await;
    let names: Vec<&str> = entities["ok"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Tasks", "Other Table"]);

    let run = c.read_all(&inst, "Tasks", "full", None, 120).await;
    let expected: Vec<(String, Value)> = server
        .airtable_records(BASE, "Tasks")
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(run.id_data(), expected);
    assert!(server.requests_to("/v0/").iter().all(|r| r.param("pageSize").unwrap().parse::<u32>().unwrap() <= 100));
    let other = c.read_all(&inst, "Other Table", "full", None, 120).await;
    assert_eq!(other.records.len(), 3);
    assert!(server.requests_to("/v0/appTEST1234567890/Other%20Table").len() == 1);

    // Resume from the middle: no gap, no duplicate.
    let out = c.read(&inst, "Tasks", "full", None, 150).await;
    let mut ids: Vec<String> =
        out["ok"]["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let rest = c.read_all(&inst, "Tasks", "full", out["ok"]["next-cursor"].as_str().map(str::to_string), 150).await;
    ids.extend(rest.ids());
    assert_eq!(ids, run.ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airtable_incremental_and_expired_offsets() {
    let server = airtable_server(150);
    let c = Connector::load(components::AIRTABLE);
    let inst = airtable_install(&server, &[("modified_field", AIRTABLE_MODIFIED)]);
    let first = c.read_all(&inst, "Tasks", "incremental", None, 100).await;
    assert_eq!(first.records.len(), 150);
    let ids: Vec<String> =
        server.airtable_records(BASE, "Tasks").iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    for id in [&ids[5], &ids[77], &ids[149]] {
        server.airtable_update(BASE, "Tasks", id, json!({"Notes": "changed"}));
    }
    let second = c.read_all(&inst, "Tasks", "incremental", first.cursor.clone(), 100).await;
    assert_eq!(second.ids(), [ids[5].clone(), ids[77].clone(), ids[149].clone()]);
    assert!(second.records.iter().all(|(_, data, _)| data["fields"]["Notes"] == "changed"));
    let last = server.requests_to("/v0/").last().unwrap().clone();
    assert!(last.param("filterByFormula").unwrap().starts_with("IS_AFTER({Last Modified}, '"), "{last:?}");

    // An expired offset cannot be resumed: permanent, with the reason.
    let out = c.read(&inst, "Tasks", "full", None, 100).await;
    let cursor = out["ok"]["next-cursor"].as_str().unwrap().to_string();
    server.airtable_expire_offsets();
    let out = c.read(&inst, "Tasks", "full", Some(&cursor), 100).await;
    let (kind, detail) = err_kind(&out);
    assert_eq!(kind, "permanent");
    assert!(detail["message"].as_str().unwrap().contains("LIST_RECORDS_ITERATOR_NOT_AVAILABLE"), "{out}");
}

fn upserts(
    range: std::ops::Range<usize>,
    external: impl Fn(usize) -> Option<String>,
    status: impl Fn(usize) -> &'static str,
) -> Vec<Value> {
    range
        .map(|i| {
            json!({"local-id": format!("local-{i}"), "external-id": external(i), "op": "upsert",
                   "data": json!({"Name": format!("Item {i}"), "Status": status(i), "Count": i}).to_string()})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airtable_writes_in_chunks_with_per_chunk_failures() {
    let server = airtable_server(0);
    let c = Connector::load(components::AIRTABLE);
    let inst = airtable_install(&server, &[]);

    // 25 creates: chunks of 10, 10 and 5.
    let records = upserts(0..25, |_| None, |_| "Todo");
    let out = c.call(&inst, "sync.write-batch", json!({"req": {"entity": "Tasks", "records": records}})).await;
    let results = out["ok"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(results.len(), 25);
    let posts = server.requests_to("/v0/").into_iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 3);
    let table = server.airtable_records(BASE, "Tasks");
    assert_eq!(table.len(), 25);
    let mut airtable_ids = Vec::new();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["local-id"], format!("local-{i}"));
        assert_eq!(r["outcome"], "created", "{r}");
        let id = r["external-id"].as_str().unwrap().to_string();
        let row = table.iter().find(|t| t["id"] == id.as_str()).unwrap();
        assert_eq!(row["fields"]["Name"], format!("Item {i}"));
        airtable_ids.push(id);
    }

    // 25 updates, one of the second chunk with an invalid Status: that chunk fails, the others apply.
    let records = upserts(0..25, |i| Some(airtable_ids[i].clone()), |i| if i == 13 { "Bogus" } else { "Done" });
    let out = c.call(&inst, "sync.write-batch", json!({"req": {"entity": "Tasks", "records": records}})).await;
    let results = out["ok"].as_array().unwrap_or_else(|| panic!("{out}"));
    for (i, r) in results.iter().enumerate() {
        if (10..20).contains(&i) {
            let message = r["outcome"]["failed"].as_str().unwrap_or_else(|| panic!("{i}: {r}"));
            assert!(message.contains("INVALID_VALUE_FOR_COLUMN"), "{message}");
        } else {
            assert_eq!(r["outcome"], "updated", "{i}: {r}");
            assert_eq!(r["external-id"], airtable_ids[i].as_str());
        }
    }
    let table = server.airtable_records(BASE, "Tasks");
    let status = |id: &str| table.iter().find(|t| t["id"] == id).unwrap()["fields"]["Status"].clone();
    assert_eq!(status(&airtable_ids[0]), "Done");
    assert_eq!(status(&airtable_ids[15]), "Todo");

    // Deletes: 12 known (two chunks), one unknown record failing alone, one never written.
    let mut deletes: Vec<Value> = (0..12)
        .map(
            |i| json!({"local-id": format!("local-{i}"), "external-id": airtable_ids[i], "op": "delete", "data": "{}"}),
        )
        .collect();
    deletes.insert(3, json!({"local-id": "ghost", "external-id": "recDOESNOTEXIST00", "op": "delete", "data": "{}"}));
    deletes.push(json!({"local-id": "never", "external-id": null, "op": "delete", "data": "{}"}));
    let out = c.call(&inst, "sync.write-batch", json!({"req": {"entity": "Tasks", "records": deletes}})).await;
    let results = out["ok"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(results.len(), 14);
    assert_eq!(results[3]["local-id"], "ghost");
    assert!(results[3]["outcome"]["failed"].as_str().unwrap().starts_with("not found"), "{}", results[3]);
    assert!(results.iter().filter(|r| r["local-id"] != "ghost").all(|r| r["outcome"] == "deleted"), "{out}");
    assert_eq!(server.airtable_records(BASE, "Tasks").len(), 13);
    assert!(server.requests_to("/v0/").iter().filter(|r| r.method == "DELETE").all(|r| {
        let q = r.query.as_deref().unwrap_or_default();
        url::form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k == "records[]").count() <= 10
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airtable_maps_errors() {
    let server = airtable_server(5);
    let c = Connector::load(components::AIRTABLE);
    let inst = airtable_install(&server, &[]);
    server.fail_next_on("/v0/", 1, 429, None);
    let out = c.read(&inst, "Tasks", "full", None, 10).await;
    assert_eq!(
        err_kind(&out),
        ("rate-limited", &json!({"retry-after-ms": 30_000, "message": err_kind(&out).1["message"]}))
    );
    server.fail_next_on("/v0/", 1, 502, None);
    assert_eq!(err_kind(&c.read(&inst, "Tasks", "full", None, 10).await).0, "retryable");
    assert_eq!(err_kind(&c.read(&inst, "Missing", "full", None, 10).await).0, "permanent");
    // A write rate-limited before anything was written fails as a whole.
    server.fail_next_on("/v0/", 1, 429, Some("2"));
    let records = upserts(0..3, |_| None, |_| "Todo");
    let out = c.call(&inst, "sync.write-batch", json!({"req": {"entity": "Tasks", "records": records}})).await;
    assert_eq!(err_kind(&out).1["retry-after-ms"], 2000);
    // A wrong token: unauthorized; the token never reaches the logs.
    let wrong = installation("airtable")
        .config("base_id", BASE)
        .config("tables", "Tasks")
        .config("api_url", &server.base_url())
        .secret("token", "patWRONG.token")
        .allow("{{config.api_url}}")
        .build();
    assert_eq!(err_kind(&c.read(&wrong, "Tasks", "full", None, 10).await).0, "unauthorized");
    let check = c.call(&wrong, "validate-credentials", json!({})).await;
    assert_eq!(check["ok"]["valid"], false, "{check}");
    assert!(!c.host.log_text(&inst).contains("secret-token"));
    // An unknown base: permanent.
    let other = installation("airtable")
        .config("base_id", "appUNKNOWN")
        .config("tables", "Tasks")
        .config("api_url", &server.base_url())
        .secret("token", "patTEST.secret-token")
        .allow("{{config.api_url}}")
        .build();
    assert_eq!(err_kind(&c.read(&other, "Tasks", "full", None, 10).await).0, "permanent");
}
