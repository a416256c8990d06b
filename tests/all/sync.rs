//! Data sync end to end: the real binary over HTTP, the reference data-sync connectors
//! (`rest-source`, `csv-source`, `airtable`) reading from and writing to a local source server
//! (`patchbay_tests::sources`), on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use patchbay_store::Backend;
use patchbay_tests::eventually;
use patchbay_tests::sources::{Dataset, SourceServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::server::{Resp, Server};

on_both_backends!(
    import_reports_progress_fills_the_records_store_and_resyncs_incrementally,
    changes_are_routed_as_events_and_mappings_apply,
    retries_item_errors_failures_cancel_and_resume,
    exports_write_records_to_airtable_and_keep_their_ids,
    schedules_queue_runs_without_piling_up,
    bad_sync_requests_are_refused_precisely,
    a_host_killed_mid_sync_resumes_without_loss_or_duplicates,
);

/// rest-source reading `/rest/cursor` of `src` as entity `items`, incremental on `updated_at`.
pub(crate) fn rest_config(src: &SourceServer, page_size: u32) -> Value {
    json!({
        "base_url": src.base_url(),
        "path": "/rest/cursor",
        "entity": "items",
        "record_path": "data",
        "pagination": "cursor",
        "next_cursor_path": "meta.next_cursor",
        "total_path": "meta.total",
        "page_size": page_size,
        "cursor_field": "updated_at",
        "since_param": "updated_since",
        "deleted_field": "deleted",
    })
}

pub(crate) async fn install(s: &Server, token: &str, connector: &str, name: &str, config: Value) -> String {
    let r = s.post("/v1/installations", token, json!({ "connector": connector, "name": name, "config": config })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

async fn put(s: &Server, path: &str, token: &str, body: Value) -> Resp {
    s.call(Method::PUT, path, token, Some(body)).await
}

/// Queues a run; returns its id.
async fn start(s: &Server, token: &str, body: Value) -> String {
    let r = s.post("/v1/syncs", token, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "queued", "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

/// Polls a run until it is over (or `limit` passes).
async fn finish(s: &Server, token: &str, run: &str, limit: Duration) -> Value {
    let path = format!("/v1/syncs/{run}");
    eventually(&format!("run {run} to finish"), limit, || async {
        let r = s.get(&path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        if matches!(r.body["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            Ok(r.body)
        } else {
            Err(r.body.to_string())
        }
    })
    .await
}

/// The runs of an installation, newest first.
async fn runs_of(s: &Server, token: &str, installation: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/syncs?installation={installation}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["runs"].as_array().unwrap().clone()
}

/// Polls until a schedule has queued `n` runs of its stream, checking on every look that no
/// more than one of them is queued or running (missed firings do not pile up); returns them.
async fn scheduled_runs(s: &Server, token: &str, installation: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} scheduled runs"), Duration::from_secs(120), || async {
        let runs = runs_of(s, token, installation).await;
        let active = runs.iter().filter(|r| r["status"] == "queued" || r["status"] == "running").count();
        assert!(active <= 1, "runs piled up: {runs:?}");
        if runs.len() >= n { Ok(runs) } else { Err(format!("{runs:?}")) }
    })
    .await
}

/// Checks that finished runs never overlapped in time.
fn assert_no_overlap(runs: &[Value]) {
    let mut spans: Vec<(String, String)> = runs
        .iter()
        .map(|r| (r["started_at"].as_str().unwrap().to_string(), r["finished_at"].as_str().unwrap().to_string()))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "runs overlap: {spans:?}");
    }
}

pub(crate) async fn sync(s: &Server, token: &str, body: Value) -> Value {
    let run = start(s, token, body).await;
    finish(s, token, &run, Duration::from_secs(120)).await
}

fn progress(run: &Value) -> [i64; 6] {
    let p = &run["progress"];
    ["fetched", "created", "updated", "unchanged", "deleted", "failed"].map(|k| p[k].as_i64().unwrap_or(-1))
}

/// The whole change feed after `since`, page by page.
async fn feed(s: &Server, token: &str, inst: &str, entity: &str, since: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = since;
    loop {
        let r = s.get(&format!("/v1/installations/{inst}/records/{entity}?since={since}&limit=1000"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let changes = r.body["changes"].as_array().unwrap().clone();
        out.extend(changes);
        since = r.body["next_since"].as_i64().unwrap();
        if !r.body["has_more"].as_bool().unwrap() {
            return out;
        }
    }
}

/// The live records of a feed by external id.
fn live(feed: &[Value]) -> BTreeMap<String, Value> {
    feed.iter()
        .filter(|c| c["op"] != "deleted")
        .map(|c| (c["external_id"].as_str().unwrap().to_string(), c["data"].clone()))
        .collect()
}

/// The dataset's current records (deleted ones left out) by id.
fn expected(ds: &Dataset) -> BTreeMap<String, Value> {
    ds.expected().collect()
}

async fn import_reports_progress_fills_the_records_store_and_resyncs_incrementally(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(2500, 400, 1);
    let src = SourceServer::start(ds.clone());
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 500)).await;

    let r = s.get(&format!("/v1/installations/{shop}/entities"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["entities"][0]["name"], "items");
    assert_eq!(r.body["entities"][0]["supports_incremental"], true);

    // A full import: every record created, the connector's total gives percent and ETA.
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run), [2500, 2500, 0, 0, 0, 0], "{run}");
    assert_eq!(run["progress"]["total"], 2500);
    assert_eq!(run["progress"]["percent"], 100.0);
    assert_eq!(run["progress"]["batches"], 3, "batches of 1000: {run}");
    assert!(run["progress"]["rate_per_sec"].as_f64().unwrap() > 0.0, "{run}");
    let all = feed(&s, &token, &shop, "items", 0).await;
    assert_eq!(all.len(), 2500);
    let seqs: Vec<i64> = all.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=2500).collect::<Vec<_>>());
    assert_eq!(live(&all), expected(&ds));
    // No route takes these changes, so by default they are not copied to the event log.
    let r = s.get("/v1/events?type=items.created", &token).await;
    assert_eq!(r.body["events"], json!([]), "{r:?}");
    let one = s.get(&format!("/v1/installations/{shop}/records/items/{}", Dataset::id(7)), &token).await;
    assert_eq!(one.status, StatusCode::OK, "{one:?}");
    assert_eq!(one.body["data"], ds.record(7));
    assert!(one.body["id"].as_str().unwrap().starts_with("rec_"));

    // Again: nothing changed, nothing is rewritten.
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items", "mode": "full" })).await;
    assert_eq!(progress(&run), [2500, 0, 0, 2500, 0, 0], "{run}");
    assert!(feed(&s, &token, &shop, "items", 2500).await.is_empty());

    // Changes at the source; an incremental run reads only them.
    ds.update(5);
    ds.update(6);
    ds.delete(7);
    ds.insert_more(3);
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items", "mode": "incremental" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run), [6, 3, 2, 0, 1, 0], "{run}");
    let changes = feed(&s, &token, &shop, "items", 2500).await;
    assert_eq!(changes.len(), 6);
    let ops: BTreeSet<(String, String)> = changes
        .iter()
        .map(|c| (c["external_id"].as_str().unwrap().to_string(), c["op"].as_str().unwrap().to_string()))
        .collect();
    assert!(ops.contains(&(Dataset::id(7), "deleted".into())), "{ops:?}");
    assert!(ops.contains(&(Dataset::id(5), "updated".into())), "{ops:?}");
    assert_eq!(live(&feed(&s, &token, &shop, "items", 0).await), expected(&ds));

    // A full run sees a record gone without a tombstone and marks it deleted.
    ds.delete(8);
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run)[4], 1, "{run}");
    assert_eq!(live(&feed(&s, &token, &shop, "items", 0).await), expected(&ds));

    // The CLI follows a run with a progress bar and exits 0 when it succeeds.
    ds.update(9);
    let out = tokio::task::spawn_blocking({
        let (url, token, shop) = (s.url.clone(), token.clone(), shop.clone());
        move || {
            std::process::Command::new(patchbay_tests::patchbay_bin())
                .args(["sync", "run", &shop, "items", "--mode", "incremental", "--follow"])
                .env("PATCHBAY_URL", url)
                .env("PATCHBAY_TOKEN", token)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("records") && stderr.contains("updated 1") && stderr.contains("succeeded"), "{stderr}");
    let r = s.get(&format!("/v1/syncs?installation={shop}"), &token).await;
    assert_eq!(r.body["runs"].as_array().unwrap().len(), 5, "{r:?}");
    let r = s.get("/metrics", &s.operator).await;
    let metrics = r.body.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("patchbay_sync_records_total{outcome=\"created\"} 2503"), "{metrics}");
    assert!(metrics.contains("patchbay_sync_runs_total{status=\"succeeded\"} 5"), "{metrics}");
}

async fn changes_are_routed_as_events_and_mappings_apply(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(20, 200, 2);
    let src = SourceServer::start(ds.clone());
    let web = TestServer::start().await;
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 100)).await;
    let notify = install(&s, &token, "notify-webhook", "chat", json!({ "webhook_url": web.url("/slack") })).await;
    let r = s
        .post(
            "/v1/routes",
            &token,
            json!({
                "name": "items-to-chat", "event_types": ["items.*"], "source_installation": shop,
                "destination_installation": notify, "operation": "send",
                "payload_template": crate::server::notification(
                    "{{event.type}} {{event.payload.external_id}} {{event.payload.data.title}}", "ignored"),
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    // A mapping naming a bad transform is refused with its location.
    let bad = json!({ "fields": [{ "target": "title", "source": "name", "transform": ["lowercse"] }] });
    let r = put(&s, &format!("/v1/installations/{shop}/mappings/items"), &token, bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("fields[0].transform[0]"), "{r:?}");
    let mapping = json!({ "fields": [
        { "target": "title", "source": "name", "transform": ["trim"] },
        { "target": "version", "source": "version", "transform": ["integer"] },
        { "target": "origin", "constant": "rest" },
    ]});
    let r = put(&s, &format!("/v1/installations/{shop}/mappings/items"), &token, mapping).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["revision"], 1);

    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(progress(&run), [20, 20, 0, 0, 0, 0], "{run}");
    let stored = live(&feed(&s, &token, &shop, "items", 0).await);
    for (id, data) in &stored {
        let i = Dataset::index_of(id).unwrap();
        let source = ds.record(i);
        assert_eq!(
            data,
            &json!({ "title": source["name"].as_str().unwrap().trim(), "version": 1, "origin": "rest" }),
            "{id}"
        );
    }

    // One event per change, delivered through the route.
    let slack = || async { web.received().iter().filter(|r| r.path == "/slack").count() };
    eventually("20 deliveries", Duration::from_secs(60), || async { (slack().await >= 20).then_some(()) }).await;
    ds.update(3);
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items", "mode": "incremental" })).await;
    assert_eq!(progress(&run), [1, 0, 1, 0, 0, 0], "{run}");
    eventually("21 deliveries", Duration::from_secs(60), || async { (slack().await >= 21).then_some(()) }).await;
    let texts: Vec<String> = web
        .received()
        .iter()
        .filter(|r| r.path == "/slack")
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    assert_eq!(texts.iter().filter(|t| t.contains("items.created")).count(), 20);
    assert!(texts.iter().any(|t| t.contains(&format!("items.updated {}", Dataset::id(3)))), "{texts:?}");
    let r = s.get("/v1/events?type=items.created&limit=100", &token).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 20, "{r:?}");
    // An unchanged re-sync emits nothing.
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(progress(&run)[3], 20);
    let r = s.get("/v1/events?limit=1000", &token).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 21, "{r:?}");
}

async fn retries_item_errors_failures_cancel_and_resume(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(3000, 300, 3);
    let src = SourceServer::start(ds.clone());
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 250)).await;

    // Two 500s and a 429 with Retry-After: 1 are waited out; the run succeeds.
    src.fail_next(2, 500, None);
    let started = Instant::now();
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run), [3000, 3000, 0, 0, 0, 0]);
    assert_eq!(src.requests().iter().filter(|r| r.status == 500).count(), 2);
    src.fail_next(1, 429, Some("1"));
    let before = Instant::now();
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(before.elapsed() >= Duration::from_secs(1), "the rate limit was not waited out");
    assert!(started.elapsed() >= Duration::from_millis(500));

    // Item errors are recorded and do not stop the run.
    let rows = json!([{ "id": "a", "v": 1 }, { "v": "no id" }, { "id": "b", "v": 2 }, "not an object", { "id": "c" }]);
    src.put_file("/odd.json", rows.to_string(), false);
    let odd = install(
        &s,
        &token,
        "rest-source",
        "odd",
        json!({ "base_url": src.base_url(), "path": "/odd.json", "pagination": "none", "entity": "odd" }),
    )
    .await;
    let run = sync(&s, &token, json!({ "installation": odd, "entity": "odd" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run)[1], 3, "{run}");
    assert_eq!(progress(&run)[5], 2, "{run}");
    let r = s.get(&format!("/v1/syncs/{}/errors", run["id"].as_str().unwrap()), &token).await;
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2, "{r:?}");

    // A permanent error fails the run with the connector's message; fixed, it resumes.
    let gone = install(
        &s,
        &token,
        "rest-source",
        "gone",
        json!({ "base_url": src.base_url(), "path": "/later.json", "pagination": "none", "entity": "later" }),
    )
    .await;
    let run = sync(&s, &token, json!({ "installation": gone, "entity": "later" })).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("permanent"), "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    src.put_file("/later.json", json!([{ "id": "x" }]).to_string(), false);
    let r = s.post(&format!("/v1/syncs/{id}/resume"), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let run = finish(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let r = s.post(&format!("/v1/syncs/{id}/resume"), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");

    // Cancel stops a run after its batch; resume continues where it stopped. The source answers
    // the first batch (4 pages of 250: the default batch is 1000 records), then holds the next
    // request: the run is surely in progress when cancelled.
    ds.insert_more(2000);
    src.hold_after(4);
    let run = start(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    wait_until_fetched(&s, &token, &run, 1).await;
    eventually("the run's second batch to wait at the source", Duration::from_secs(60), || async {
        (src.held() >= 1).then_some(())
    })
    .await;
    let r = s.post(&format!("/v1/syncs/{run}/cancel"), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    src.release();
    let cancelled = finish(&s, &token, &run, Duration::from_secs(60)).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let fetched = progress(&cancelled)[0];
    assert!(fetched > 0 && fetched < 5000, "{cancelled}");
    let r = s.post(&format!("/v1/syncs/{run}/resume"), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let done = finish(&s, &token, &run, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let p = progress(&done);
    assert_eq!(p[0], 5000, "{done}");
    assert_eq!((p[1], p[3]), (2000, 3000), "created the new records once: {done}");
    assert_eq!(live(&feed(&s, &token, &shop, "items", 0).await), expected(&ds));
}

/// Polls a run until it fetched `at_least` records; it must stay queued or running meanwhile.
async fn wait_until_fetched(s: &Server, token: &str, run: &str, at_least: i64) -> Value {
    let path = format!("/v1/syncs/{run}");
    eventually(&format!("run {run} to fetch {at_least} records"), Duration::from_secs(120), || async {
        let r = s.get(&path, token).await;
        if r.body["progress"]["fetched"].as_i64().unwrap_or(0) >= at_least {
            return Ok(r.body);
        }
        assert!(r.body["status"] == "queued" || r.body["status"] == "running", "{:?}", r.body);
        Err(r.body.to_string())
    })
    .await
}

async fn exports_write_records_to_airtable_and_keep_their_ids(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(25, 200, 4);
    let src = SourceServer::start(ds.clone());
    src.require_token(Some("pat-secret-1"));
    src.airtable_seed("appTEST", "Tasks", 0);
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 100)).await;
    let air = install(
        &s,
        &token,
        "airtable",
        "air",
        json!({ "base_id": "appTEST", "tables": "Tasks", "api_url": src.base_url() }),
    )
    .await;
    for inst in [&shop, &air] {
        let name = if inst == &shop { "api_key" } else { "token" };
        let r =
            put(&s, &format!("/v1/installations/{inst}/credentials"), &token, json!({ name: "pat-secret-1" })).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let mapping = json!({ "fields": [
        { "target": "Name", "source": "name" },
        { "target": "Count", "source": "version", "transform": ["number"] },
        { "target": "Notes", "source": "id" },
    ]});
    let r = put(&s, &format!("/v1/installations/{air}/mappings/Tasks"), &token, mapping).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let export = json!({ "installation": air, "entity": "Tasks", "direction": "export",
        "source": { "installation": shop, "entity": "items" } });
    let run = sync(&s, &token, export.clone()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run), [25, 25, 0, 0, 0, 0], "{run}");
    let table = src.airtable_records("appTEST", "Tasks");
    assert_eq!(table.len(), 25);
    let by_note: BTreeMap<String, Value> =
        table.iter().map(|r| (r["fields"]["Notes"].as_str().unwrap().to_string(), r.clone())).collect();
    assert_eq!(by_note[&Dataset::id(4)]["fields"]["Name"], ds.record(4)["name"]);
    assert_eq!(by_note[&Dataset::id(4)]["fields"]["Count"], 1);

    // Changes flow on: an update becomes a PATCH of the same Airtable record, a deletion a DELETE.
    ds.update(4);
    ds.delete(5);
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items", "mode": "incremental" })).await;
    assert_eq!(progress(&run)[2..5], [1, 0, 1], "{run}");
    let mut incremental = export.clone();
    incremental["mode"] = "incremental".into();
    let run = sync(&s, &token, incremental).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(progress(&run), [2, 0, 1, 0, 1, 0], "{run}");
    let table = src.airtable_records("appTEST", "Tasks");
    assert_eq!(table.len(), 24);
    let updated = table.iter().find(|r| r["fields"]["Notes"] == Dataset::id(4)).unwrap();
    assert_eq!(updated["id"], by_note[&Dataset::id(4)]["id"], "the same Airtable record");
    assert_eq!(updated["fields"]["Count"], 2);
    // Nothing new: nothing is written.
    let mut again = export.clone();
    again["mode"] = "incremental".into();
    let run = sync(&s, &token, again).await;
    assert_eq!(progress(&run), [0, 0, 0, 0, 0, 0], "{run}");
}

async fn schedules_queue_runs_without_piling_up(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(50, 200, 5);
    let src = SourceServer::start(ds.clone());
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 10)).await;
    let r = s
        .post(
            "/v1/schedules",
            &token,
            json!({ "installation": shop, "entity": "items", "interval_secs": 1, "cron": "* * * * *" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r =
        s.post("/v1/schedules", &token, json!({ "installation": shop, "entity": "items", "cron": "61 * * * *" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("minute"), "{r:?}");

    // Every second, but each run takes at least 2.5 s (5 pages of 10 at 0.5 s): runs never
    // overlap and the missed firings do not queue up behind the running one.
    src.set_latency(Duration::from_millis(500));
    let created = Instant::now();
    let r = s
        .post(
            "/v1/schedules",
            &token,
            json!({ "installation": shop, "entity": "items", "mode": "full", "interval_secs": 1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let schedule = r.body["id"].as_str().unwrap().to_string();
    let r =
        s.post("/v1/schedules", &token, json!({ "installation": shop, "entity": "items", "interval_secs": 5 })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    scheduled_runs(&s, &token, &shop, 2).await;
    let r =
        s.call(Method::PATCH, &format!("/v1/schedules/{schedule}"), &token, Some(json!({ "enabled": false }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["enabled"], false);
    // Disabled: the runs it queued are all there is.
    let runs = runs_of(&s, &token, &shop).await;
    let elapsed = created.elapsed();
    assert!(runs.iter().all(|r| r["trigger"] == "schedule" && r["schedule"] == schedule.as_str()), "{runs:?}");
    // One after the other, each at least 2.5 s long: no more started than that allows.
    let most = (elapsed.as_millis() / 2500) as usize + 1;
    assert!((2..=most).contains(&runs.len()), "{} runs in {elapsed:?}: {runs:?}", runs.len());
    let mut done = Vec::new();
    for r in &runs {
        let r = finish(&s, &token, r["id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        done.push(r);
    }
    assert_no_overlap(&done);
    // A disabled schedule stays quiet: nothing new after two firing intervals plus two polls of
    // the sync worker. (The store test checks the same with explicit times.)
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs_of(&s, &token, &shop).await.len(), runs.len(), "a disabled schedule fired");
    let r = s.get("/v1/schedules", &token).await;
    assert_eq!(r.body["schedules"].as_array().unwrap().len(), 1);
    let r = s.call(Method::DELETE, &format!("/v1/schedules/{schedule}"), &token, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

async fn bad_sync_requests_are_refused_precisely(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.tenant("acme").await;
    let other = s.tenant("other").await;
    let viewer = s.key("acme", &["view"]).await;
    let ds = Dataset::new(300, 200, 6);
    let src = SourceServer::start(ds.clone());
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 10)).await;
    let csv = install(&s, &token, "csv-source", "file", json!({ "url": src.url("/files/data.csv") })).await;
    let gh = install(&s, &token, "github", "gh", json!({})).await;

    let cases = [
        (json!({ "installation": shop, "entity": "nope" }), "unknown_entity", "items"),
        (json!({ "installation": shop, "entity": "items", "mode": "sometimes" }), "invalid_sync", "mode"),
        (json!({ "installation": shop, "entity": "items", "direction": "sideways" }), "invalid_sync", "direction"),
        (json!({ "installation": csv, "entity": "rows", "mode": "incremental" }), "unsupported_sync", "incremental"),
        (json!({ "installation": shop, "entity": "items", "direction": "export" }), "invalid_sync", "source"),
        (
            json!({ "installation": shop, "entity": "items", "direction": "export", "source": { "installation": csv, "entity": "rows" } }),
            "unsupported_sync",
            "supports-write",
        ),
        (json!({ "installation": gh, "entity": "items" }), "not_a_sync_connector", "data-sync"),
        (json!({ "installation": shop, "entity": "items", "surprise": 1 }), "invalid_body", "surprise"),
    ];
    for (body, code, mention) in cases {
        let r = s.post("/v1/syncs", &token, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
        assert_eq!(r.code(), code, "{body}: {r:?}");
        assert!(r.message().contains(mention), "{body}: {r:?}");
    }
    let r = s.post("/v1/syncs", &token, json!({ "installation": "ins_nope", "entity": "items" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = s.post("/v1/syncs", &viewer, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

    // One active run per stream (held at the source: it cannot end meanwhile).
    src.hold();
    let run = start(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    let r = s.post("/v1/syncs", &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert!(r.message().contains(&run), "{r:?}");
    src.release();
    let done = finish(&s, &token, &run, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded");
    let r = s.post(&format!("/v1/syncs/{run}/cancel"), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    // Other tenants see nothing of it.
    for path in [
        format!("/v1/syncs/{run}"),
        format!("/v1/syncs/{run}/errors"),
        format!("/v1/installations/{shop}/records/items"),
        format!("/v1/installations/{shop}/entities"),
    ] {
        let r = s.get(&path, &other).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {r:?}");
    }
    let r = s.post(&format!("/v1/syncs/{run}/resume"), &other, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = s.get(&format!("/v1/installations/{shop}/records/items?since=-1"), &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // A made-up cursor that matches the documented pattern is a position, never refused: one
    // before the first change starts at the beginning.
    let first = s.get(&format!("/v1/installations/{shop}/records/items"), &token).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    for cursor in ["ch1c8fb09878a1208c5", "ch1ffffffffffffffff", "ch18000000000000000"] {
        let r = s.get(&format!("/v1/installations/{shop}/records/items?cursor={cursor}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{cursor}: {r:?}");
        assert_eq!(r.body["changes"], first.body["changes"], "{cursor}");
    }
    let r = s.get(&format!("/v1/installations/{shop}/records/items?limit=5000"), &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = s.get("/v1/syncs?status=sleeping", &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = put(&s, &format!("/v1/installations/{shop}/mappings/items"), &token, json!({ "fields": "all" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = s.get(&format!("/v1/installations/{shop}/mappings/items"), &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a refused mapping is not stored: {r:?}");
}

/// 200 000 records; the host is SIGKILLed mid-run and restarted: the records store ends equal to
/// the source, every record stored once, every change event written once.
async fn a_host_killed_mid_sync_resumes_without_loss_or_duplicates(backend: Backend) {
    const N: usize = 200_000;
    let _turn = crate::HEAVY.lock().await;
    let env = [("PATCHBAY_SYNC_LEASE_SECS", "8"), ("PATCHBAY_DISPATCH_CONCURRENCY", "0")];
    let mut s = Server::start_with(backend, &env).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(N, 256, 7);
    let src = SourceServer::start(ds.clone());
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 1000)).await;
    // A route, so every change also becomes an event with a delivery (held: no dispatcher).
    let web = TestServer::start().await;
    let notify = install(&s, &token, "notify-webhook", "chat", json!({ "webhook_url": web.url("/slack") })).await;
    let r = s
        .post(
            "/v1/routes",
            &token,
            json!({ "name": "all-items", "event_types": ["items.*"], "destination_installation": notify,
                "operation": "send", "payload_template": crate::server::notification("{{event.type}}", "k") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    let run = start(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    let at_kill = wait_until_fetched(&s, &token, &run, (N / 4) as i64).await;
    s.kill();
    let s = s.restart().await;
    let done = finish(&s, &token, &run, Duration::from_secs(600)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(progress(&at_kill)[0] < N as i64, "killed too late: {at_kill}");
    assert_eq!(progress(&done), [N as i64, N as i64, 0, 0, 0, 0], "{done}");

    // The store equals the source, record for record, numbered 1..=N without gaps or repeats.
    sqlx::any::install_default_drivers();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=ro", s.data_dir().join("patchbay.db").display()),
        Backend::Postgres => s.database_url().to_string(),
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT external_id, payload, seq FROM records ORDER BY seq").fetch_all(&pool).await.unwrap();
    assert_eq!(rows.len(), N);
    for (n, (id, payload, seq)) in rows.iter().enumerate() {
        assert_eq!(*seq, n as i64 + 1);
        let i = Dataset::index_of(id).unwrap();
        assert_eq!(payload, &ds.record_json(i), "record {id}");
    }
    let distinct: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT external_id) FROM records").fetch_one(&pool).await.unwrap();
    assert_eq!(distinct, N as i64);
    // One event and one delivery per change.
    let events: (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT subject) FROM events WHERE event_type = 'items.created'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(events, (N as i64, N as i64));
    let deliveries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries").fetch_one(&pool).await.unwrap();
    assert_eq!(deliveries, N as i64);
    pool.close().await;
}

/// Three hosts on one PostgreSQL database: a schedule fires once per slot whichever host sees it
/// first, its runs never overlap, and a run whose host is killed is finished by another host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hosts_share_schedules_and_take_over_runs() {
    let _turn = crate::HEAVY.lock().await;
    // A lease far longer than any batch: a run changes hosts only when its host dies.
    let mut hosts = Server::cluster(Backend::Postgres, 3, &[("PATCHBAY_SYNC_LEASE_SECS", "10")]).await;
    let token = hosts[0].tenant("acme").await;
    let ds = Dataset::new(60, 200, 8);
    let src = SourceServer::start(ds.clone());
    let shop = install(&hosts[0], &token, "rest-source", "shop", rest_config(&src, 10)).await;

    // Every second, each run at least 1.8 s (6 pages at 0.3 s).
    src.set_latency(Duration::from_millis(300));
    let created = Instant::now();
    let r = hosts[1]
        .post("/v1/schedules", &token, json!({ "installation": shop, "entity": "items", "interval_secs": 1 }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let schedule = r.body["id"].as_str().unwrap().to_string();
    scheduled_runs(&hosts[0], &token, &shop, 2).await;
    let r = hosts[2]
        .call(Method::PATCH, &format!("/v1/schedules/{schedule}"), &token, Some(json!({ "enabled": false })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let runs = runs_of(&hosts[0], &token, &shop).await;
    let elapsed = created.elapsed();
    let most = (elapsed.as_millis() / 1800) as usize + 1;
    assert!((2..=most).contains(&runs.len()), "{} runs in {elapsed:?}: {runs:?}", runs.len());
    let mut done = Vec::new();
    for r in &runs {
        let r = finish(&hosts[0], &token, r["id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        done.push(r);
    }
    assert_no_overlap(&done);

    // A long run (3 batches of 1000 records, the default, in pages of 100) reads its first batch,
    // then the source holds it: its host is killed mid-run and another host finishes it from its
    // cursor.
    ds.insert_more(2940);
    src.set_latency(Duration::ZERO);
    let big = rest_config(&src, 100);
    let long = install(&hosts[0], &token, "rest-source", "long", big).await;
    src.hold_after(10);
    let run = start(&hosts[0], &token, json!({ "installation": long, "entity": "items" })).await;
    eventually("the run's second batch to wait at the source", Duration::from_secs(60), || async {
        (src.held() >= 1).then_some(())
    })
    .await;
    // The first batch's commit is not held up.
    wait_until_fetched(&hosts[0], &token, &run, 1000).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(hosts[0].database_url()).await.unwrap();
    let sql = format!("SELECT lease_owner FROM sync_runs WHERE id = '{run}'");
    let owner = eventually("the run's lease owner", Duration::from_secs(30), || async {
        let owner: Option<String> = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
        owner.ok_or("no lease owner")
    })
    .await;
    let holder = hosts.iter().position(|h| owner.contains(&format!(":{}:", h.pid()))).expect("a host holds the run");
    hosts[holder].kill();
    src.release();
    let survivor = &hosts[(holder + 1) % 3];
    let done = finish(survivor, &token, &run, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(progress(&done)[0], 3000, "read on from the cursor: {done}");
    assert_eq!(progress(&done)[1], 3000, "every record created once: {done}");
    let owner: Option<String> = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
    assert_eq!(owner, None);
    assert_eq!(live(&feed(survivor, &token, &long, "items", 0).await), expected(&ds));
    pool.close().await;
}

/// `PATCHBAY_SYNC_CHANGE_EVENTS=all`: every change is an event, with or without routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_becomes_an_event_when_configured() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_SYNC_CHANGE_EVENTS", "all")]).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(30, 200, 9);
    let src = SourceServer::start(ds.clone());
    let shop = install(&s, &token, "rest-source", "shop", rest_config(&src, 100)).await;
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(progress(&run)[1], 30, "{run}");
    ds.delete(4);
    let run = sync(&s, &token, json!({ "installation": shop, "entity": "items", "mode": "incremental" })).await;
    assert_eq!(progress(&run)[4], 1, "{run}");
    let r = s.get("/v1/events?type=items.created&limit=100", &token).await;
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 30, "{r:?}");
    let e = &events[0];
    assert_eq!(e["source_installation"], shop.as_str(), "{e}");
    assert_eq!(e["payload"]["entity"], "items", "{e}");
    assert!(e["payload"]["data"]["name"].is_string(), "{e}");
    let r = s.get("/v1/events?type=items.deleted", &token).await;
    assert_eq!(r.body["events"][0]["subject"], Dataset::id(4), "{r:?}");
}
