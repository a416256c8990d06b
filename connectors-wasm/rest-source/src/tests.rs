//! Native tests of the read loop against an in-process fake API.

use std::cell::RefCell;

use super::*;

/// A fake API over `n` records `{"id": i, "updated_at": i * 10}` (ids from 1), in every style.
struct Fake {
    n: u64,
    urls: RefCell<Vec<String>>,
}

fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_owned()))
}

impl Fake {
    fn new(n: u64) -> Fake {
        Fake { n, urls: RefCell::new(Vec::new()) }
    }

    fn records(&self, since: Option<u64>, from: u64, count: u64) -> (Vec<String>, u64) {
        let all: Vec<u64> = (1..=self.n).filter(|i| since.is_none_or(|s| i * 10 > s)).collect();
        let total = all.len() as u64;
        let page = all.iter().skip(from as usize).take(count as usize);
        (page.map(|i| format!(r#"{{"id":{i},"updated_at":{},"gone":{}}}"#, i * 10, i % 7 == 0)).collect(), total)
    }

    fn respond(&self, url: &str) -> Result<Response, ConnectorError> {
        self.urls.borrow_mut().push(url.to_owned());
        let since = param(url, "since").and_then(|s| s.parse().ok());
        let num = |name: &str, default: u64| param(url, name).and_then(|v| v.parse().ok()).unwrap_or(default);
        let (body, headers) = if url.contains("/page") {
            let (per, page) = (num("per_page", 100), num("page", 1));
            let (items, total) = self.records(since, (page - 1) * per, per);
            (format!(r#"{{"data":[{}],"meta":{{"total":{total}}}}}"#, items.join(",")), vec![])
        } else if url.contains("/offset") {
            let (items, _) = self.records(since, num("offset", 0), num("limit", 100));
            (format!(r#"{{"data":[{}]}}"#, items.join(",")), vec![])
        } else if url.contains("/cursor") {
            let from = param(url, "cursor").map_or(0, |c| c.trim_start_matches('c').parse().unwrap_or(0));
            let limit = num("limit", 100);
            let (items, total) = self.records(since, from, limit);
            let next = if from + limit < total { format!(r#""c{}""#, from + limit) } else { "null".to_owned() };
            (format!(r#"{{"data":[{}],"meta":{{"next":{next}}}}}"#, items.join(",")), vec![])
        } else {
            // Link style with a server-chosen page size of 7, relative links.
            let page = num("page", 1);
            let (items, total) = self.records(since, (page - 1) * 7, 7);
            let mut headers = vec![];
            if page * 7 < total {
                headers.push((
                    "Link".to_owned(),
                    format!(r#"</link?page={}>; rel="next", </link?page=99>; rel="last""#, page + 1),
                ));
            }
            (format!("[{}]", items.join(",")), headers)
        };
        Ok(Response { status: 200, headers, body: body.into_bytes() })
    }
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Settings::from_lookup(move |k| owned.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())).expect("valid")
}

/// Reads until done; returns the ids, the final cursor and the number of batches.
fn run(s: &Settings, fake: &Fake, incremental: bool, start: Cursor, limit: u32) -> (Vec<String>, Cursor, usize) {
    let send = |url: &str| fake.respond(url);
    let mut cursor = start;
    let mut ids = Vec::new();
    for batches in 1..1000 {
        let batch = read(s, incremental, &cursor, limit, &send).expect("batch");
        assert!(batch.records.len() <= limit as usize, "limit {limit}: {}", batch.records.len());
        ids.extend(batch.records.iter().map(|r| r.id.clone()));
        cursor = sync_support::cursor::decode(batch.next_cursor.as_deref().expect("cursor")).expect("valid");
        if batch.done {
            return (ids, cursor, batches);
        }
    }
    panic!("never done");
}

fn expected(n: u64) -> Vec<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

#[test]
fn every_pagination_style_reads_everything_once() {
    for (path, extra) in [
        ("/page", vec![("pagination", "page"), ("record_path", "data"), ("total_path", "meta.total")]),
        ("/page", vec![("pagination", "page"), ("record_path", "data")]),
        ("/offset", vec![("pagination", "offset"), ("record_path", "data")]),
        ("/cursor", vec![("pagination", "cursor"), ("record_path", "data"), ("next_cursor_path", "meta.next")]),
        ("/link", vec![]),
    ] {
        for (limit, page_size) in [(25, "10"), (10, "10"), (7, "10"), (1000, "100"), (3, "100")] {
            let mut pairs = vec![("base_url", "http://127.0.0.1:9"), ("path", path), ("page_size", page_size)];
            pairs.extend(extra.iter().copied());
            let s = settings(&pairs);
            let fake = Fake::new(103);
            let (ids, _, _) = run(&s, &fake, false, Cursor::default(), limit);
            assert_eq!(ids, expected(103), "{path} {extra:?} limit {limit} page_size {page_size}");
        }
    }
}

#[test]
fn a_batch_makes_several_requests_up_to_the_limit() {
    let s = settings(&[
        ("base_url", "http://h.test"),
        ("path", "/offset"),
        ("pagination", "offset"),
        ("record_path", "data"),
    ]);
    let fake = Fake::new(5000);
    let send = |url: &str| fake.respond(url);
    let batch = read(&s, false, &Cursor::default(), 1000, &send).expect("batch");
    assert_eq!(batch.records.len(), 1000);
    assert_eq!(fake.urls.borrow().len(), 10);
    assert_eq!(batch.next_cursor.as_deref(), Some(r#"{"p":{"o":1000}}"#));
    assert!(fake.urls.borrow().iter().all(|u| u.ends_with("&limit=100")));
}

#[test]
fn incremental_runs_filter_on_the_previous_watermark() {
    let s = settings(&[
        ("base_url", "http://h.test"),
        ("path", "/cursor"),
        ("pagination", "cursor"),
        ("record_path", "data"),
        ("next_cursor_path", "meta.next"),
        ("cursor_field", "updated_at"),
        ("since_param", "since"),
        ("deleted_field", "gone"),
    ]);
    let fake = Fake::new(50);
    let (ids, done, _) = run(&s, &fake, true, Cursor::default(), 20);
    assert_eq!(ids, expected(50));
    assert_eq!(sync_support::cursor::encode(&done).expect("json"), r#"{"w":500}"#);
    // More records appear; the next run asks only for what is newer than 500.
    let fake = Fake::new(60);
    let (ids, done, _) = run(&s, &fake, true, done, 20);
    assert_eq!(ids, (51..=60).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(fake.urls.borrow().iter().all(|u| u.contains("since=500")), "{:?}", fake.urls.borrow());
    assert_eq!(sync_support::cursor::encode(&done).expect("json"), r#"{"w":600}"#);
    // A full read ignores the watermark but keeps raising it.
    let (ids, _, _) = run(&s, &fake, false, done, 20);
    assert_eq!(ids.len(), 60);
}

#[test]
fn deleted_flags_and_item_errors() {
    let s =
        settings(&[("base_url", "http://h.test"), ("path", "/x"), ("pagination", "none"), ("deleted_field", "gone")]);
    let body = r#"[{"id":1,"gone":true},{"name":"no id"},7,{"id":2,"gone":"true"},{"id":3,"gone":false}]"#;
    let send = |_: &str| Ok(Response { status: 200, headers: vec![], body: body.as_bytes().to_vec() });
    let batch = read(&s, false, &Cursor::default(), 100, &send).expect("batch");
    let got: Vec<(&str, bool)> = batch.records.iter().map(|r| (r.id.as_str(), r.deleted)).collect();
    assert_eq!(got, [("1", true), ("2", true), ("3", false)]);
    assert_eq!(batch.errors.len(), 2);
    assert!(batch.errors[0].message.contains("no primary key field `id`"), "{}", batch.errors[0].message);
    assert!(batch.done);
    // The data is the record's text as sent.
    assert_eq!(batch.records[0].data, r#"{"id":1,"gone":true}"#);
    // limit 2 on a single-response API: the rest is skipped on resume.
    let first = read(&s, false, &Cursor::default(), 2, &send).expect("batch");
    assert!(!first.done);
    let cursor: Cursor = sync_support::cursor::decode(first.next_cursor.as_deref().expect("c")).expect("valid");
    let second = read(&s, false, &cursor, 2, &send).expect("batch");
    assert_eq!(second.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["2"]);
}

#[test]
fn errors_and_bad_bodies() {
    let s = settings(&[("base_url", "http://h.test"), ("path", "/x"), ("record_path", "data.items")]);
    for (status, body, kind) in [
        (200, "not json", "permanent"),
        (200, r#"{"data":{}}"#, "permanent"),
        (200, r#"{"data":{"items":5}}"#, "permanent"),
        (503, "busy", "retryable"),
        (401, "{}", "unauthorized"),
        (429, "{}", "rate-limited"),
        (404, "{}", "permanent"),
    ] {
        let send = |_: &str| Ok(Response { status, headers: vec![], body: body.as_bytes().to_vec() });
        let err = read(&s, false, &Cursor::default(), 10, &send).expect_err("error");
        let got = match err {
            ConnectorError::Permanent(_) => "permanent",
            ConnectorError::Retryable(_) => "retryable",
            ConnectorError::Unauthorized(_) => "unauthorized",
            ConnectorError::RateLimited(_) => "rate-limited",
        };
        assert_eq!(got, kind, "{status} {body}");
    }
}

#[test]
fn links_must_stay_on_the_origin() {
    let s = settings(&[("base_url", "http://h.test"), ("path", "/x")]);
    let send = |_: &str| {
        Ok(Response {
            status: 200,
            headers: vec![("link".to_owned(), "<http://evil.test/x?page=2>; rel=\"next\"".to_owned())],
            body: b"[{\"id\":1}]".to_vec(),
        })
    };
    let err = read(&s, false, &Cursor::default(), 10, &send).expect_err("refused");
    assert!(err.message().contains("leaves http://h.test"), "{}", err.message());
    let tampered: Cursor = sync_support::cursor::decode(r#"{"p":{"c":"http://evil.test/x"}}"#).expect("valid");
    assert!(read(&s, false, &tampered, 10, &send).is_err());
}

#[test]
fn page_sizes_keep_page_numbers_exact() {
    assert_eq!(page_size_for(0, 100, 100, 0), Some(100));
    assert_eq!(page_size_for(300, 100, 100, 0), Some(100));
    assert_eq!(page_size_for(300, 50, 100, 300), None);
    assert_eq!(page_size_for(250, 100, 100, 0), Some(50));
    assert_eq!(page_size_for(7, 100, 100, 0), Some(7));
    assert_eq!(page_size_for(0, 30, 100, 0), Some(30));
}

/// Throughput of the parse path on 1 KB records (run with `--release --nocapture` to read it).
#[test]
fn parses_big_pages_quickly() {
    let record = |i: usize| {
        format!(
            r#"{{"id":"r{i:07}","name":"Name {i}","updated_at":"2024-01-01T00:00:00.000Z","padding":"{}"}}"#,
            "x".repeat(900)
        )
    };
    let body = format!("{{\"data\":[{}]}}", (0..1000).map(record).collect::<Vec<_>>().join(","));
    let s = settings(&[
        ("base_url", "http://h.test"),
        ("path", "/x"),
        ("pagination", "none"),
        ("record_path", "data"),
        ("cursor_field", "updated_at"),
    ]);
    let send = |_: &str| Ok(Response { status: 200, headers: vec![], body: body.as_bytes().to_vec() });
    let started = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..20 {
        n += read(&s, false, &Cursor::default(), 1000, &send).expect("batch").records.len();
    }
    let per_sec = n as f64 / started.elapsed().as_secs_f64();
    println!("rest-source parse path: {per_sec:.0} records/s ({n} records of ~1 KB)");
    assert_eq!(n, 20_000);
}
