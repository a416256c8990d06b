//! Native tests against an in-process fake of the Airtable list, create, update and delete calls.

use std::cell::RefCell;

use patchbay_sdk::data_sync::{WriteOp, WriteOutcome, WriteRecord};
use patchbay_sdk::http::Method;

use super::*;

fn settings(modified: Option<&str>) -> Settings {
    let modified = modified.map(str::to_owned);
    Settings::from_lookup(move |k| match k {
        "base_id" => Some("appTEST".to_owned()),
        "tables" => Some("Tasks, My Table".to_owned()),
        "api_url" => Some("http://127.0.0.1:9/".to_owned()),
        "modified_field" => modified.clone(),
        _ => None,
    })
    .expect("valid")
}

fn response(status: u16, body: Value) -> Result<Response, ConnectorError> {
    Ok(Response { status, headers: vec![], body: body.to_string().into_bytes() })
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_owned()))
}

/// `n` records `rec000…i` with `Modified` = i seconds after 2024-01-01; 250-record pages at most 100.
fn list(n: usize, request: &Request) -> Result<Response, ConnectorError> {
    let size: usize = query_param(&request.url, "pageSize").and_then(|s| s.parse().ok()).unwrap_or(100);
    assert!(size <= 100);
    let from: usize =
        query_param(&request.url, "offset").map_or(0, |o| o.trim_start_matches("itr").parse().unwrap_or(0));
    let records: Vec<Value> = (from..n.min(from + size))
        .map(|i| json!({"id": format!("rec{i:014}"), "createdTime": "2024-01-01T00:00:00.000Z",
                        "fields": {"Name": format!("Task {i}"), "Modified": format!("2024-01-01T00:{:02}:{:02}.000Z", i / 60, i % 60)}}))
        .collect();
    let mut body = json!({"records": records});
    if from + size < n {
        body["offset"] = json!(format!("itr{}", from + size));
    }
    response(200, body)
}

use serde_json::json;

#[test]
fn reads_every_record_across_pages_and_batches() {
    let s = settings(Some("Modified"));
    let urls = RefCell::new(Vec::new());
    let send = |r: &Request| {
        urls.borrow_mut().push(r.url.clone());
        assert_eq!(patchbay_sdk::http::header(&r.headers, "authorization"), Some("Bearer {{secret:token}}"));
        list(250, r)
    };
    let mut cursor = RunCursor::default();
    let mut ids = Vec::new();
    loop {
        let batch = read(&s, "My Table", false, &cursor, 120, &send).expect("batch");
        assert!(batch.records.len() <= 120);
        ids.extend(batch.records.iter().map(|r| r.id.clone()));
        cursor = sync_support::cursor::decode(batch.next_cursor.as_deref().expect("cursor")).expect("valid");
        if batch.done {
            break;
        }
    }
    assert_eq!(ids, (0..250).map(|i| format!("rec{i:014}")).collect::<Vec<_>>());
    assert!(
        urls.borrow()[0].starts_with("http://127.0.0.1:9/v0/appTEST/My%20Table?pageSize=100"),
        "{:?}",
        urls.borrow()
    );
    assert!(urls.borrow()[1].contains("pageSize=20&offset=itr100"), "{:?}", urls.borrow());
    assert_eq!(sync_support::cursor::encode(&cursor).expect("json"), r#"{"w":"2024-01-01T00:04:09.000Z"}"#);

    // The next incremental run filters on the watermark and sorts by the field.
    let batch = read(&s, "Tasks", true, &cursor, 10, &send).expect("batch");
    let last = urls.borrow().last().cloned().expect("url");
    assert!(
        last.contains("filterByFormula=IS_AFTER%28%7BModified%7D%2C+%272024-01-01T00%3A04%3A09.000Z%27%29"),
        "{last}"
    );
    assert!(last.contains("sort%5B0%5D%5Bfield%5D=Modified"), "{last}");
    assert_eq!(batch.records.len(), 10);
}

#[test]
fn read_errors() {
    let s = settings(None);
    for (status, body, expect) in [
        (422, json!({"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "message": "x"}}), "offset_expired"),
        (401, json!({"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}), "http_401"),
        (403, json!({"error": {"type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", "message": "x"}}), "http_403"),
        (429, json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "slow"}]}), "rate_limited"),
        (503, json!({}), "http_503"),
    ] {
        let send = |_: &Request| response(status, body.clone());
        let err = read(&s, "Tasks", false, &RunCursor::default(), 10, &send).expect_err("error");
        assert_eq!(err.code(), expect, "{status}");
        if let ConnectorError::RateLimited(r) = &err {
            assert_eq!(r.retry_after_ms, 30_000);
        }
    }
    let send = |_: &Request| response(200, json!({"records": [{"fields": {}}, {"id": "rec1", "fields": {}}]}));
    let batch = read(&s, "Tasks", false, &RunCursor::default(), 10, &send).expect("batch");
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.errors.len(), 1);
    assert!(batch.done);
    assert!(s.check_entity("Nope").expect_err("unknown").message().contains("`Nope`"));
}

fn upsert(local: &str, external: Option<&str>, data: Value) -> WriteRecord {
    WriteRecord {
        local_id: local.to_owned(),
        external_id: external.map(str::to_owned),
        op: WriteOp::Upsert,
        data: data.to_string(),
    }
}

/// A fake table: creates get ids `new<n>`, `Status: "Bad"` is refused, `recGone` does not exist.
fn writer(calls: &RefCell<Vec<(Method, usize)>>, request: &Request) -> Result<Response, ConnectorError> {
    let body: Value = request.body.as_deref().map(|b| serde_json::from_slice(b).expect("json")).unwrap_or(Value::Null);
    let records = body["records"].as_array().cloned().unwrap_or_default();
    let deleting: Vec<String> =
        request.url.split(['?', '&']).filter_map(|kv| kv.strip_prefix("records%5B%5D=")).map(str::to_owned).collect();
    let count = if request.method == Method::Delete { deleting.len() } else { records.len() };
    calls.borrow_mut().push((request.method, count));
    if count > 10 {
        return response(422, json!({"error": {"type": "INVALID_RECORDS", "message": "at most 10"}}));
    }
    if records.iter().any(|r| r["fields"]["Status"] == "Bad") {
        return response(
            422,
            json!({"error": {"type": "INVALID_VALUE_FOR_COLUMN", "message": "Field \"Status\" cannot accept the provided value"}}),
        );
    }
    if deleting.iter().any(|id| id == "recGone") || records.iter().any(|r| r["id"] == "recGone") {
        return response(404, json!({"error": {"type": "NOT_FOUND", "message": "Record recGone not found"}}));
    }
    let out: Vec<Value> = match request.method {
        Method::Delete => deleting.iter().map(|id| json!({"id": id, "deleted": true})).collect(),
        Method::Post => records
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"id": format!("new{}-{i}", calls.borrow().len()), "fields": r["fields"]}))
            .collect(),
        _ => records.clone(),
    };
    response(200, json!({"records": out}))
}

#[test]
fn writes_in_chunks_of_ten_in_input_order() {
    let s = settings(None);
    let calls = RefCell::new(Vec::new());
    let send = |r: &Request| writer(&calls, r);
    let mut input: Vec<WriteRecord> = (0..25)
        .map(|i| {
            upsert(
                &format!("l{i}"),
                None,
                json!({"Name": format!("n{i}"), "Status": if i == 12 { "Bad" } else { "Todo" }}),
            )
        })
        .collect();
    input.push(upsert("u1", Some("recA"), json!({"fields": {"Name": "renamed"}})));
    input.push(upsert("u2", Some("recGone"), json!({"Name": "x"})));
    input.push(WriteRecord {
        local_id: "d1".into(),
        external_id: Some("recB".into()),
        op: WriteOp::Delete,
        data: "{}".into(),
    });
    input.push(WriteRecord { local_id: "d2".into(), external_id: None, op: WriteOp::Delete, data: "{}".into() });
    input.push(upsert("bad", None, json!([1])));
    let results = write::write(&s, "Tasks", input, &send).expect("results");
    assert_eq!(results.len(), 30);
    for (i, r) in results.iter().take(25).enumerate() {
        assert_eq!(r.local_id, format!("l{i}"));
        if (10..20).contains(&i) {
            assert!(
                matches!(&r.outcome, WriteOutcome::Failed(m) if m.contains("INVALID_VALUE_FOR_COLUMN")),
                "{i}: {:?}",
                r.outcome
            );
        } else {
            assert_eq!(r.outcome, WriteOutcome::Created, "{i}");
            assert!(r.external_id.as_deref().is_some_and(|id| id.starts_with("new")));
        }
    }
    assert_eq!(results[25].outcome, WriteOutcome::Updated);
    assert_eq!(results[25].external_id.as_deref(), Some("recA"));
    assert!(matches!(&results[26].outcome, WriteOutcome::Failed(m) if m.starts_with("not found")), "{:?}", results[26]);
    assert_eq!(results[27].outcome, WriteOutcome::Deleted);
    assert_eq!(results[28].outcome, WriteOutcome::Deleted);
    assert!(matches!(&results[29].outcome, WriteOutcome::Failed(_)));
    let calls = calls.borrow();
    assert!(calls.iter().all(|(_, n)| *n <= 10));
    assert_eq!(calls.iter().filter(|(m, _)| *m == Method::Post).count(), 3);
}

#[test]
fn call_level_errors_fail_the_call_only_before_anything_was_written() {
    let s = settings(None);
    let input = || (0..15).map(|i| upsert(&format!("l{i}"), None, json!({"Name": i}))).collect::<Vec<_>>();
    let send = |_: &Request| response(429, json!({"errors": [{"error": "RATE_LIMIT_REACHED"}]}));
    let err = write::write(&s, "Tasks", input(), &send).expect_err("rate limited");
    assert!(matches!(err, ConnectorError::RateLimited(_)));

    let calls = RefCell::new(0);
    let send = |r: &Request| {
        *calls.borrow_mut() += 1;
        if *calls.borrow() == 1 { writer(&RefCell::new(Vec::new()), r) } else { response(503, json!({})) }
    };
    let results = write::write(&s, "Tasks", input(), &send).expect("partial results");
    assert!(results[..10].iter().all(|r| r.outcome == WriteOutcome::Created));
    assert!(
        results[10..].iter().all(|r| matches!(&r.outcome, WriteOutcome::Failed(m) if m.starts_with("not attempted")))
    );
}
