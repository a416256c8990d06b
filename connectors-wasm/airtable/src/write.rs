//! `write-batch`: creates, updates and deletes in chunks of at most 10 records (see the crate
//! doc for the rules).

use patchbay_sdk::ConnectorError;
use patchbay_sdk::data_sync::{WriteOp, WriteOutcome, WriteRecord, WriteResult};
use patchbay_sdk::http::{Request, Response};
use serde_json::{Map, Value, json};
use sync_support::errors;

use crate::{Send, Settings, airtable_error, authorized};

/// Records per request Airtable accepts.
pub const CHUNK: usize = 10;
/// Requests one call may make (the host allows 50).
const MAX_REQUESTS: u32 = 45;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Delete,
}

/// One record to send: its input position, Airtable id (update, delete) and fields.
struct Item {
    index: usize,
    id: Option<String>,
    fields: Map<String, Value>,
}

/// What a chunk's request came to.
enum Answer {
    /// Per record of the chunk, in order: the Airtable id.
    Applied(Vec<Option<String>>),
    /// Airtable refused the whole chunk (422 …): every record fails with this message.
    Rejected(String),
    /// Airtable named one record of the chunk as the problem (not found): it fails, the rest is
    /// sent again.
    RecordFailed(usize, String),
}

/// Writes `records` to `table`; results in input order.
pub fn write(
    settings: &Settings,
    table: &str,
    records: Vec<WriteRecord>,
    send: Send<'_>,
) -> Result<Vec<WriteResult>, ConnectorError> {
    let mut results: Vec<Option<WriteResult>> = vec![None; records.len()];
    let local_ids: Vec<String> = records.iter().map(|r| r.local_id.clone()).collect();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for (index, record) in records.into_iter().enumerate() {
        let external = record.external_id.filter(|id| !id.is_empty());
        match record.op {
            WriteOp::Delete => match external {
                Some(id) => deletes.push(Item { index, id: Some(id), fields: Map::new() }),
                // Never written to Airtable: nothing to remove.
                None => results[index] = Some(result(&local_ids[index], None, WriteOutcome::Deleted)),
            },
            WriteOp::Upsert => match fields_of(&record.data) {
                Ok(fields) => {
                    let item = Item { index, id: external.clone(), fields };
                    if external.is_some() { updates.push(item) } else { creates.push(item) }
                }
                Err(message) => {
                    results[index] = Some(result(&local_ids[index], external, WriteOutcome::Failed(message)))
                }
            },
        }
    }

    let url = settings.table_url(table);
    let mut requests = 0u32;
    let mut wrote_something = false;
    let mut stopped: Option<String> = None;
    for (kind, items) in [(Kind::Create, creates), (Kind::Update, updates), (Kind::Delete, deletes)] {
        let mut pending: Vec<Item> = items;
        while !pending.is_empty() {
            let take = pending.len().min(CHUNK);
            let mut chunk: Vec<Item> = pending.drain(..take).collect();
            while !chunk.is_empty() {
                if let Some(reason) = &stopped {
                    for item in chunk.drain(..) {
                        let id = item.id.clone();
                        results[item.index] =
                            Some(result(&local_ids[item.index], id, WriteOutcome::Failed(reason.clone())));
                    }
                    break;
                }
                if requests >= MAX_REQUESTS {
                    stopped = Some(format!(
                        "not attempted: one write-batch call sends at most {MAX_REQUESTS} requests ({} records); send smaller batches",
                        usize::try_from(MAX_REQUESTS).unwrap_or(usize::MAX) * CHUNK
                    ));
                    continue;
                }
                requests += 1;
                let answer = match send_chunk(&url, kind, &chunk, send) {
                    Ok(answer) => answer,
                    Err(e) if !wrote_something => return Err(e),
                    Err(e) => {
                        stopped = Some(format!("not attempted: {}", e.message()));
                        continue;
                    }
                };
                match answer {
                    Answer::Applied(ids) => {
                        wrote_something = true;
                        let outcome = match kind {
                            Kind::Create => WriteOutcome::Created,
                            Kind::Update => WriteOutcome::Updated,
                            Kind::Delete => WriteOutcome::Deleted,
                        };
                        for (item, id) in chunk.drain(..).zip(ids) {
                            let id = id.or(item.id);
                            results[item.index] = Some(result(&local_ids[item.index], id, outcome.clone()));
                        }
                    }
                    Answer::Rejected(message) => {
                        for item in chunk.drain(..) {
                            let id = item.id.clone();
                            results[item.index] =
                                Some(result(&local_ids[item.index], id, WriteOutcome::Failed(message.clone())));
                        }
                    }
                    Answer::RecordFailed(position, message) => {
                        let item = chunk.remove(position);
                        results[item.index] =
                            Some(result(&local_ids[item.index], item.id, WriteOutcome::Failed(message)));
                    }
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| result(&local_ids[i], None, WriteOutcome::Failed("internal: no result".to_owned())))
        })
        .collect())
}

fn result(local_id: &str, external_id: Option<String>, outcome: WriteOutcome) -> WriteResult {
    WriteResult { local_id: local_id.to_owned(), external_id, outcome }
}

/// The fields of a write-record's `data`: the object itself, or its `fields` member.
fn fields_of(data: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(mut object)) => match object.remove("fields") {
            Some(Value::Object(fields)) => Ok(fields),
            Some(other) => {
                object.insert("fields".to_owned(), other);
                Ok(object)
            }
            None => Ok(object),
        },
        Ok(_) => Err("data is not a JSON object of fields".to_owned()),
        Err(e) => Err(format!("data is not valid JSON: {e}")),
    }
}

fn send_chunk(url: &str, kind: Kind, chunk: &[Item], send: Send<'_>) -> Result<Answer, ConnectorError> {
    let request = match kind {
        Kind::Create => {
            let records: Vec<Value> = chunk.iter().map(|i| json!({"fields": i.fields})).collect();
            Request::post(url).json(&json!({"records": records, "typecast": true}))?
        }
        Kind::Update => {
            let records: Vec<Value> = chunk.iter().map(|i| json!({"id": i.id, "fields": i.fields})).collect();
            Request::patch(url).json(&json!({"records": records, "typecast": true}))?
        }
        Kind::Delete => {
            let ids: Vec<(&str, &str)> =
                chunk.iter().map(|i| ("records[]", i.id.as_deref().unwrap_or_default())).collect();
            Request::delete(format!("{url}?{}", patchbay_sdk::http::form_urlencode(&ids)))
        }
    };
    let response = send(&authorized(request))?;
    answer(kind, chunk, &response)
}

fn answer(kind: Kind, chunk: &[Item], response: &Response) -> Result<Answer, ConnectorError> {
    if response.is_success() {
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|e| ConnectorError::permanent("invalid_response", format!("unexpected Airtable response: {e}")))?;
        let listed = body["records"].as_array().cloned().unwrap_or_default();
        let ids = (0..chunk.len())
            .map(|i| listed.get(i).and_then(|r| r["id"].as_str()).map(str::to_owned))
            .collect::<Vec<_>>();
        if kind == Kind::Create && ids.iter().any(Option::is_none) {
            return Err(ConnectorError::permanent(
                "invalid_response",
                "Airtable did not return an id for every created record",
            ));
        }
        return Ok(Answer::Applied(ids));
    }
    let (error_type, message) = airtable_error(&response.body);
    let detail = if message.is_empty() { error_type.clone() } else { format!("{error_type}: {message}") };
    match response.status {
        404 | 422 if kind != Kind::Create => {
            // A message naming one of the chunk's records: that record is the problem.
            if let Some(position) =
                chunk.iter().position(|i| i.id.as_deref().is_some_and(|id| !id.is_empty() && message.contains(id)))
            {
                let reason = if response.status == 404 || error_type.contains("NOT_FOUND") {
                    format!("not found ({detail})")
                } else {
                    detail
                };
                return Ok(Answer::RecordFailed(position, reason));
            }
            Ok(Answer::Rejected(format!("Airtable rejected the records (HTTP {}): {detail}", response.status)))
        }
        422 => Ok(Answer::Rejected(format!("Airtable rejected the records (HTTP 422): {detail}"))),
        _ => Err(errors::status_error(response)),
    }
}
