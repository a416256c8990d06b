//! The generic JSON ↔ WIT mapping and `dynamic::invoke`, over the real components: the hub types
//! of the reference connectors and the hostile guest, and the `kinds` guest, which echoes a value
//! of every WIT type kind.

use std::time::Duration;

use patchbay_runtime::CallError;
use patchbay_runtime::LoadedComponent;
use patchbay_runtime::dynamic::{
    self, Direction, DynamicOutcome, InvokeError, MappingError, OperationInfo, Type, find_operation, invoke,
    json_to_val, operation_schema, operations, params_from_json, type_schema, val_to_json, val_to_json_typed,
};
use patchbay_tests::components;
use serde_json::{Value, json};

use crate::harness::{Host, TestServer, installation};

fn op<'a>(c: &'a LoadedComponent, name: &str) -> &'a OperationInfo {
    find_operation(c.exported_functions(), name).unwrap_or_else(|e| panic!("{e}"))
}

/// The type of an operation's only parameter.
fn param_type(c: &LoadedComponent, name: &str) -> Type {
    let op = op(c, name);
    assert_eq!(op.params.len(), 1, "{name}");
    op.params[0].1.clone()
}

fn result_type(c: &LoadedComponent, name: &str) -> Type {
    op(c, name).result.clone().unwrap()
}

/// json → val → json through the type; returns the output.
fn round_trip(ty: &Type, input: &Value) -> Value {
    let val = json_to_val(ty, input).unwrap_or_else(|e| panic!("{input}: {e}"));
    val_to_json_typed(ty, &val)
}

fn mapping_error(ty: &Type, input: Value) -> MappingError {
    match json_to_val(ty, &input) {
        Ok(v) => panic!("{input} was accepted as {v:?}"),
        Err(e) => e,
    }
}

fn names(ops: &[OperationInfo]) -> Vec<String> {
    ops.iter().map(OperationInfo::qualified_name).collect()
}

#[test]
fn operations_of_every_world() {
    let host = Host::new(&[]);
    let expect: [(&str, &[&str]); 5] = [
        (components::TRIVIAL, &["lifecycle.health-check", "lifecycle.validate-credentials"]),
        (
            components::NOTIFY_WEBHOOK,
            &[
                "lifecycle.health-check",
                "lifecycle.validate-credentials",
                "notifications.send",
                "notifications.get-status",
            ],
        ),
        (
            components::GITHUB,
            &[
                "lifecycle.health-check",
                "lifecycle.validate-credentials",
                "webhooks.verify",
                "webhooks.transform",
                "webhooks.deliver",
            ],
        ),
        (
            components::HOSTILE,
            &[
                "lifecycle.health-check",
                "lifecycle.validate-credentials",
                "sync.list-entities",
                "sync.read-batch",
                "sync.write-batch",
            ],
        ),
        // Its own `kinds` interface is exported, but it is not an operation.
        (components::KINDS, &["lifecycle.health-check", "lifecycle.validate-credentials"]),
    ];
    for (path, want) in expect {
        let c = host.load(path);
        let mut got = names(c.operations());
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{path}");
        // The cached list is the same as a fresh listing.
        assert_eq!(names(&operations(host.runtime.engine(), c.component())).len(), c.operations().len());
    }

    // Every other export is listed as an exported function, never as an operation.
    let k = host.load(components::KINDS);
    let mut exported = names(k.exported_functions());
    exported.sort();
    let mut want = vec![
        "lifecycle.health-check",
        "lifecycle.validate-credentials",
        "kinds.echo-scalars",
        "kinds.echo-nested",
        "kinds.many-params",
        "kinds.nothing",
        "kinds.fail",
        "kinds.health-check",
        "kinds.boom",
        "kinds.make-bytes",
        "kinds.sum-bytes",
        "kinds.make-counter",
    ];
    want.sort();
    assert_eq!(exported, want);

    let c = host.load(components::NOTIFY_WEBHOOK);
    let send = op(&c, "send");
    assert_eq!(send.name, "send");
    assert_eq!(send.interface, "patchbay:connector/notifications@0.1.0");
    assert_eq!(send.interface_name(), "notifications");
    assert_eq!(send.params.len(), 1);
    assert_eq!(send.params[0].0, "notification");
    assert!(matches!(send.params[0].1, Type::Record(_)));
    assert!(matches!(send.result, Some(Type::Result(_))));
    let health = op(&c, "health-check");
    assert_eq!(health.interface, "patchbay:connector/lifecycle@0.1.0");
    assert!(health.params.is_empty());

    let k = host.load(components::KINDS);
    let nothing = op(&k, "nothing");
    assert!(nothing.params.is_empty() && nothing.result.is_none());
    let many = op(&k, "many-params");
    let params: Vec<&str> = many.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(params, ["first-name", "count", "tags"]);
}

#[test]
fn operation_names_resolve_and_errors_list_what_exists() {
    let host = Host::new(&[]);
    let c = host.load(components::NOTIFY_WEBHOOK);
    let ops = c.operations();
    for name in [
        "send",
        "notifications.send",
        "patchbay:connector/notifications@0.1.0#send",
        "get_status",
        "notifications.get_status",
    ] {
        let op = find_operation(ops, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(op.interface_name(), "notifications", "{name}");
    }
    assert_eq!(find_operation(ops, "health_check").unwrap().name, "health-check");

    let err = find_operation(ops, "sned").unwrap_err();
    assert_eq!(err.code(), "unknown_operation");
    let text = err.to_string();
    assert!(text.starts_with("unknown operation \"sned\"; available: "), "{text}");
    for name in ["send", "get-status", "health-check", "validate-credentials"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(matches!(find_operation(ops, "webhooks.send"), Err(InvokeError::UnknownOperation { .. })));

    // Two interfaces export `health-check`: the bare name is ambiguous.
    let k = host.load(components::KINDS);
    // Among operations only, `health-check` is lifecycle's.
    assert_eq!(find_operation(k.operations(), "health-check").unwrap().interface_name(), "lifecycle");
    let k = k.exported_functions();
    let err = find_operation(k, "health-check").unwrap_err();
    assert_eq!(err.code(), "ambiguous_operation");
    assert_eq!(
        err.to_string(),
        "operation \"health-check\" is exported by several interfaces; call it as lifecycle.health-check or \
         kinds.health-check"
    );
    assert_eq!(find_operation(k, "kinds.health-check").unwrap().interface_name(), "kinds");
    assert_eq!(find_operation(k, "lifecycle.health-check").unwrap().interface_name(), "lifecycle");
    let err = find_operation(k, "nope").unwrap_err().to_string();
    assert!(
        err.contains("lifecycle.health-check") && err.contains("kinds.health-check") && err.contains("echo-nested"),
        "{err}"
    );
}

fn full_notification() -> Value {
    json!({
        "to": [{"address": "a@example.com", "name": "A"}, {"address": "b@example.com", "name": null}],
        "cc": [],
        "bcc": [{"address": "c@example.com", "name": null}],
        "from": {"address": "noreply@example.com", "name": "Ops"},
        "reply-to": null,
        "subject": "Deploy",
        "text": "v1.2 is live",
        "html": null,
        "template-id": null,
        "template-data": "{\"k\":1}",
        "attachments": [{"filename": "a.txt", "content-type": "text/plain", "content": "aGk=", "content-id": null}],
        "categories": ["ops"],
        "send-at": 1_700_000_000_000_u64,
        "metadata": [["k", "v"], ["k", "w"]],
        "idempotency-key": "k-1",
    })
}

#[test]
fn hub_types_round_trip() {
    let host = Host::new(&[]);
    let notify = host.load(components::NOTIFY_WEBHOOK);
    let github = host.load(components::GITHUB);
    let sync = host.load(components::HOSTILE);

    // Records with options, lists of records, list<u8> (base64), tuples (fields), u64.
    let notification = param_type(&notify, "send");
    let full = full_notification();
    assert_eq!(round_trip(&notification, &full), full);

    // snake_case spellings, byte arrays and omitted options read the same.
    let lenient = json!({
        "to": [{"address": "a@example.com", "name": "A"}, {"address": "b@example.com"}],
        "cc": [],
        "bcc": [{"address": "c@example.com"}],
        "from": {"address": "noreply@example.com", "name": "Ops"},
        "subject": "Deploy",
        "text": "v1.2 is live",
        "template_data": "{\"k\":1}",
        "attachments": [{"filename": "a.txt", "content_type": "text/plain", "content": [104, 105]}],
        "categories": ["ops"],
        "send_at": 1_700_000_000_000_u64,
        "metadata": [["k", "v"], ["k", "w"]],
        "idempotency_key": "k-1",
    });
    assert_eq!(round_trip(&notification, &lenient), full);
    assert_eq!(json_to_val(&notification, &lenient).unwrap(), json_to_val(&notification, &full).unwrap());

    // Results with variants (with and without payload) and records.
    let receipt = result_type(&notify, "send");
    for v in [
        json!({"ok": {"id": "m-1", "accepted": ["a"], "rejected": [{"address": "b", "reason": "bounced"}]}}),
        json!({"ok": {"id": null, "accepted": [], "rejected": []}}),
        json!({"err": {"rate-limited": {"retry-after-ms": 7000, "message": "slow down"}}}),
        json!({"err": {"permanent": {"code": "no_text", "message": "empty"}}}),
    ] {
        assert_eq!(round_trip(&receipt, &v), v);
    }
    let status = result_type(&notify, "get-status");
    let v = json!({"ok": {"id": "x", "status": "spam-report", "reason": null, "updated-at": 5}});
    assert_eq!(round_trip(&status, &v), v);

    // Webhooks: a list<u8> body, headers as tuples, the `verification` variant.
    let request = param_type(&github, "verify");
    let v = json!({"method": "POST", "path": "/h", "headers": [["a", "1"]], "body": "SGVsbG8sIFdvcmxkIQ==", "received-at": 0});
    assert_eq!(round_trip(&request, &v), v);
    let empty_body = json!({"method": "GET", "path": "/", "headers": [], "body": "", "received-at": 1});
    assert_eq!(round_trip(&request, &empty_body), empty_body);
    let verification = result_type(&github, "verify");
    for v in [json!({"ok": {"valid": "d-1"}}), json!({"ok": {"valid": null}}), json!({"ok": {"invalid": "bad sig"}})] {
        assert_eq!(round_trip(&verification, &v), v);
    }
    // A case whose payload is an option may be written bare (none).
    assert_eq!(round_trip(&verification, &json!({"ok": "valid"})), json!({"ok": {"valid": null}}));
    let receipt = result_type(&github, "deliver");
    let v = json!({"ok": {"status": 204, "headers": [["x-request-id", "r"]]}});
    assert_eq!(round_trip(&receipt, &v), v);

    // Sync: enums, variants without payload, nested lists, option<u64>.
    let read = param_type(&sync, "read-batch");
    let v = json!({"entity": "products", "mode": "incremental", "cursor": null, "limit": 100});
    assert_eq!(round_trip(&read, &v), v);
    let write = param_type(&sync, "write-batch");
    let v = json!({"entity": "p", "records": [
        {"local-id": "1", "external-id": null, "op": "upsert", "data": "{}"},
        {"local-id": "2", "external-id": "e2", "op": "delete", "data": "null"},
    ]});
    assert_eq!(round_trip(&write, &v), v);
    let results = result_type(&sync, "write-batch");
    let v = json!({"ok": [
        {"local-id": "1", "external-id": "e1", "outcome": "created"},
        {"local-id": "2", "external-id": null, "outcome": {"failed": "duplicate"}},
    ]});
    assert_eq!(round_trip(&results, &v), v);
    // `{"case": null}` reads as the payload-less case.
    let alt = json!({"ok": [{"local-id": "1", "external-id": "e1", "outcome": {"created": null}}]});
    assert_eq!(round_trip(&results, &alt)["ok"][0]["outcome"], "created");
    let batch = result_type(&sync, "read-batch");
    let v = json!({"ok": {
        "records": [{"id": "1", "data": "{}", "deleted": false}],
        "errors": [{"id": null, "message": "m"}],
        "next-cursor": "c",
        "done": false,
        "total": 18_446_744_073_709_551_615_u64,
    }});
    assert_eq!(round_trip(&batch, &v), v);
    let entities = result_type(&sync, "list-entities");
    let v = json!({"ok": [{"name": "p", "label": null, "primary-key": ["id"], "cursor-field": null,
                           "supports-incremental": true, "supports-write": false, "json-schema": null}]});
    assert_eq!(round_trip(&entities, &v), v);

    // Lifecycle.
    let health = result_type(&sync, "health-check");
    let v = json!({"ok": {"status": "degraded", "message": null}});
    assert_eq!(round_trip(&health, &v), v);
    let v = json!({"err": {"unauthorized": {"code": "bad_token", "message": "no"}}});
    assert_eq!(round_trip(&health, &v), v);
}

#[test]
fn input_errors_are_precise() {
    let host = Host::new(&[]);
    let notify = host.load(components::NOTIFY_WEBHOOK);
    let github = host.load(components::GITHUB);
    let sync = host.load(components::HOSTILE);
    let notification = param_type(&notify, "send");

    let mut n = full_notification();
    n["to"][0]["address"] = json!(5);
    let e = mapping_error(&notification, n);
    assert_eq!(e.path, "to[0].address");
    assert_eq!(e.to_string(), "to[0].address: expected a string, got the number 5");

    let mut n = full_notification();
    n["recipients"] = json!([]);
    let e = mapping_error(&notification, n);
    assert_eq!(e.path, "");
    assert!(e.message.starts_with("unknown field \"recipients\"; expected to, cc, bcc, from, reply-to"), "{e}");

    let mut n = full_notification();
    n.as_object_mut().unwrap().remove("idempotency-key");
    assert_eq!(mapping_error(&notification, n).to_string(), "missing field \"idempotency-key\" (string)");

    let mut n = full_notification();
    n["idempotency_key"] = json!("again");
    assert_eq!(
        mapping_error(&notification, n).to_string(),
        "field \"idempotency-key\" is given twice (as idempotency-key and idempotency_key)"
    );

    let mut n = full_notification();
    n["send-at"] = json!(-1);
    assert_eq!(
        mapping_error(&notification, n).to_string(),
        "send-at: -1 is out of range for u64 (0 to 18446744073709551615)"
    );

    let mut n = full_notification();
    n["attachments"][0]["content"] = json!("not base64!");
    let e = mapping_error(&notification, n);
    assert_eq!(e.path, "attachments[0].content");
    assert!(e.message.starts_with("not valid base64 (list<u8>)"), "{e}");

    let mut n = full_notification();
    n["attachments"][0]["content"] = json!([1, 256]);
    assert_eq!(
        mapping_error(&notification, n).to_string(),
        "attachments[0].content[1]: 256 is out of range for u8 (0 to 255)"
    );

    let mut n = full_notification();
    n["metadata"] = json!([["only-key"]]);
    assert_eq!(
        mapping_error(&notification, n).to_string(),
        "metadata[0]: expected an array of exactly 2 elements (tuple<string, string>), got 1"
    );

    let mut n = full_notification();
    n["to"] = json!({"address": "x"});
    assert_eq!(
        mapping_error(&notification, n).to_string(),
        "to: expected an array (list<record { address, name }>), got an object"
    );

    let read = param_type(&sync, "read-batch");
    let e = mapping_error(&read, json!({"entity": "p", "mode": "Full", "limit": 1}));
    assert_eq!(e.to_string(), "mode: unknown case \"Full\"; expected one of full, incremental");
    let e = mapping_error(&read, json!({"entity": "p", "mode": "full", "limit": 4_294_967_296_u64}));
    assert_eq!(e.to_string(), "limit: 4294967296 is out of range for u32 (0 to 4294967295)");
    let e = mapping_error(&read, json!({"entity": "p", "mode": "full", "limit": 1.5}));
    assert_eq!(e.to_string(), "limit: expected an integer (u32), got 1.5");
    assert!(json_to_val(&read, &json!({"entity": "p", "mode": "full", "limit": 1e3})).is_ok());
    let e = mapping_error(&read, json!(["p"]));
    assert_eq!(e.to_string(), "expected an object (record), got an array");

    let verification = result_type(&github, "verify");
    let e = mapping_error(&verification, json!({"ok": {"maybe": "x"}}));
    assert_eq!(e.to_string(), "ok: unknown case \"maybe\"; expected one of valid(…), invalid(…)");
    let e = mapping_error(&verification, json!({"ok": "invalid"}));
    assert_eq!(e.to_string(), "ok: case \"invalid\" needs a payload (string); write {\"invalid\": …}");
    let e = mapping_error(&verification, json!({"ok": {"valid": null, "invalid": "x"}}));
    assert!(e.message.starts_with("expected an object with exactly one key (the case), got 2 keys"), "{e}");
    let e = mapping_error(&verification, json!({"fine": 1}));
    assert_eq!(e.to_string(), "expected {\"ok\": …} or {\"err\": …} (result), got an object");

    // Function inputs.
    let send = op(&notify, "send");
    let e = params_from_json(send, &json!({"notification": full_notification(), "extra": 1})).unwrap_err();
    assert_eq!(e.to_string(), "unknown parameter \"extra\"; expected notification");
    let e = params_from_json(send, &json!({})).unwrap_err();
    assert!(e.to_string().starts_with("missing parameter \"notification\" (record { to, cc, bcc"), "{e}");
    let e = params_from_json(send, &Value::Null).unwrap_err();
    assert_eq!(e.to_string(), "expected an object with the parameters (notification), got null");
    let mut n = full_notification();
    n["cc"] = json!([{"address": true}]);
    let e = params_from_json(send, &json!({"notification": n})).unwrap_err();
    assert_eq!(e.to_string(), "notification.cc[0].address: expected a string, got the boolean true");
    let health = op(&notify, "health-check");
    assert!(params_from_json(health, &Value::Null).unwrap().is_empty());
    assert!(params_from_json(health, &json!({})).unwrap().is_empty());
    let e = params_from_json(health, &json!({"x": 1})).unwrap_err();
    assert_eq!(e.to_string(), "unknown parameter \"x\"; there are no parameters");
    let e = params_from_json(health, &json!([])).unwrap_err();
    assert_eq!(e.to_string(), "expected an empty object or null (the operation takes no parameters), got an array");
}

fn scalars() -> Value {
    json!({
        "flag": true,
        "tiny": -128,
        "byte": 255,
        "short": -32768,
        "ushort": 65535,
        "int": -2_147_483_648,
        "uint": 4_294_967_295_u32,
        "long": i64::MIN,
        "ulong": u64::MAX,
        "single": 0.1,
        "double": -1.5e300,
        "letter": "é",
        "text": "naïve ☃",
    })
}

fn nested() -> Value {
    json!({
        "pair": [7, "seven"],
        "bytes": "AAEC/w==",
        "shapes": ["point", {"circle": 2.5}, {"label": "l"}, {"maybe": 3}, {"maybe": null}],
        "deep": "inner",
        "unit-result": {"ok": null},
        "typed-result": {"err": "bad"},
        "err-only": {"err": "dark-green"},
        "perms": ["read", "admin-access"],
        "color": "red",
        "matrix": [[1, -2], [], [3]],
    })
}

async fn call(host: &Host, c: &LoadedComponent, operation: &str, input: Value) -> DynamicOutcome {
    let inst = installation("kinds").build();
    let report = dynamic::invoke_export(&host.runtime, c, &inst, operation, input)
        .await
        .unwrap_or_else(|e| panic!("{operation}: {e}"));
    report.outcome.unwrap_or_else(|e| panic!("{operation}: {e}"))
}

/// A `list<u8>` crosses as one buffer both ways: 4 MiB out of the guest as base64 and back in.
/// (Lifted as one wasmtime `Val` per byte, 4 MiB ran out of the call's hostcall fuel and trapped.)
#[tokio::test]
async fn large_byte_lists_cross_as_one_buffer() {
    use base64::Engine as _;
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);
    let n: usize = 4 << 20;
    let out = call(&host, &k, "make-bytes", json!({"n": n})).await;
    let DynamicOutcome::Ok(Value::String(b64)) = out else { panic!("{:?}", out) };
    let bytes = base64::engine::general_purpose::STANDARD.decode(&b64).expect("standard base64");
    assert_eq!(bytes.len(), n);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == i as u8), "the bytes come back in order");
    let sum: u32 = bytes.iter().map(|b| u32::from(*b)).sum();
    // The same 4 MiB as a parameter (and a result of one flat value).
    assert_eq!(call(&host, &k, "sum-bytes", json!({ "data": b64 })).await, DynamicOutcome::Ok(json!(sum)));
    assert_eq!(call(&host, &k, "make-bytes", json!({"n": 0})).await, DynamicOutcome::Ok(json!("")));
    assert_eq!(call(&host, &k, "sum-bytes", json!({"data": [1, 2, 250]})).await, DynamicOutcome::Ok(json!(253)));
    assert_eq!(call(&host, &k, "sum-bytes", json!({"data": "_w"})).await, DynamicOutcome::Ok(json!(255)));
}

#[tokio::test]
async fn every_type_kind_round_trips_through_a_guest() {
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);

    let out = call(&host, &k, "echo-scalars", json!({"value": scalars()})).await;
    assert_eq!(out, DynamicOutcome::Ok(scalars()));

    let out = call(&host, &k, "echo-nested", json!({"value": nested()})).await;
    assert_eq!(out, DynamicOutcome::Ok(nested()));

    // Lenient spellings read the same and come back canonical.
    let lenient = json!({
        "pair": [7, "seven"],
        "bytes": [0, 1, 2, 255],
        "shapes": [{"point": null}, {"circle": 2.5}, {"label": "l"}, {"maybe": 3}, "maybe"],
        "deep": "inner",
        "unit_result": {"ok": null},
        "typed_result": {"err": "bad"},
        "err_only": {"err": "dark_green"},
        "perms": ["admin_access", "read", "read"],
        "color": "red",
        "matrix": [[1, -2], [], [3]],
    });
    let out = call(&host, &k, "echo_nested", json!({"value": lenient})).await;
    let DynamicOutcome::Ok(out) = out else { panic!("{out:?}") };
    let mut want = nested();
    // Flags come back in declaration order.
    want["perms"] = json!(["read", "admin-access"]);
    assert_eq!(out, want);

    // Empty bytes are an empty base64 string; option<option<T>> collapses some(none) to null.
    let mut v = nested();
    v["bytes"] = json!("");
    v["deep"] = Value::Null;
    v["typed-result"] = json!({"ok": 65535});
    v["unit-result"] = json!({"err": null});
    v["perms"] = json!([]);
    assert_eq!(call(&host, &k, "echo-nested", json!({"value": v.clone()})).await, DynamicOutcome::Ok(v));

    // Several parameters, snake_case names, an omitted option parameter.
    let out = call(&host, &k, "many-params", json!({"first_name": "Ada", "tags": ["a", "b"]})).await;
    assert_eq!(out, DynamicOutcome::Ok(json!(["Ada", null, 2])));
    let out = call(&host, &k, "many-params", json!({"first-name": "Ada", "count": 4, "tags": []})).await;
    assert_eq!(out, DynamicOutcome::Ok(json!(["Ada", 4, 0])));

    // No parameters and no result: `{}` or null in, null out.
    assert_eq!(call(&host, &k, "nothing", Value::Null).await, DynamicOutcome::Ok(Value::Null));
    assert_eq!(call(&host, &k, "nothing", json!({})).await, DynamicOutcome::Ok(Value::Null));

    // A result that is not `result<_, connector-error>` is returned whole.
    assert_eq!(call(&host, &k, "kinds.health-check", json!({})).await, DynamicOutcome::Ok(json!("kinds.health-check")));
    assert_eq!(
        call(&host, &k, "lifecycle.health-check", json!({})).await,
        DynamicOutcome::Ok(json!({"status": "healthy", "message": "kinds"}))
    );
}

#[tokio::test]
async fn scalar_input_errors() {
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);
    let ty = param_type(&k, "echo-scalars");
    let with = |field: &str, v: Value| {
        let mut s = scalars();
        s[field] = v;
        mapping_error(&ty, s).to_string()
    };
    assert_eq!(with("tiny", json!(128)), "tiny: 128 is out of range for s8 (-128 to 127)");
    assert_eq!(
        with("long", json!(9_223_372_036_854_775_808_u64)),
        "long: 9223372036854775808 is out of range for s64 (-9223372036854775808 to 9223372036854775807)"
    );
    assert_eq!(with("ulong", json!(1e20)), "ulong: 1e+20 is out of range for u64 (0 to 18446744073709551615)");
    assert_eq!(
        with("ulong", json!(1e17)),
        "ulong: 1e+17 is not exact; write large integers without a fraction or exponent"
    );
    assert_eq!(with("uint", json!("5")), "uint: expected an integer (u32), got a string");
    assert_eq!(with("single", json!(1e39)), "single: 1e+39 is out of range for f32");
    assert_eq!(with("double", Value::Null), "double: expected a number (f64), got null");
    assert_eq!(with("letter", json!("ab")), "letter: expected exactly one character (char), got 2 characters");
    assert_eq!(with("letter", json!("")), "letter: expected exactly one character (char), got 0 characters");
    assert_eq!(with("flag", json!(1)), "flag: expected a boolean, got the number 1");

    let ty = param_type(&k, "echo-nested");
    let with = |field: &str, v: Value| {
        let mut s = nested();
        s[field] = v;
        mapping_error(&ty, s).to_string()
    };
    assert_eq!(
        with("perms", json!(["read", "sudo"])),
        "perms[1]: unknown flag \"sudo\"; expected any of read, write, admin-access"
    );
    assert_eq!(
        with("pair", json!([1, "a", 2])),
        "pair: expected an array of exactly 2 elements (tuple<u32, string>), got 3"
    );
    assert_eq!(
        with("shapes", json!(["circle"])),
        "shapes[0]: case \"circle\" needs a payload (f64); write {\"circle\": …}"
    );
    assert_eq!(
        with("shapes", json!([{"point": 1}])),
        "shapes[0].point: expected null (this case has no payload), got the number 1"
    );
    assert_eq!(
        with("unit-result", json!({"ok": 1})),
        "unit-result.ok: expected null (this arm has no payload), got the number 1"
    );
    assert_eq!(with("color", json!("blue")), "color: unknown case \"blue\"; expected one of red, dark-green");
    assert_eq!(with("matrix", json!([[1], ["x"]])), "matrix[1][0]: expected an integer (s32), got a string");

    // Errors before running: nothing is called, nothing is logged.
    let inst = installation("kinds-bad").build();
    let err = dynamic::invoke_export(&host.runtime, &k, &inst, "echo-nested", json!({"value": {"pair": []}}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bad_input");
    assert_eq!(
        err.to_string(),
        "invalid input: value.pair: expected an array of exactly 2 elements (tuple<u32, string>), got 0"
    );
    let err = dynamic::invoke_export(&host.runtime, &k, &inst, "health-check", json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::AmbiguousOperation { .. }), "{err}");
    assert!(host.logs(&inst).is_empty());
}

#[tokio::test]
async fn connector_errors_are_split_out() {
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);
    assert_eq!(call(&host, &k, "fail", json!({"kind": "ok", "n": 5})).await, DynamicOutcome::Ok(json!(5)));
    assert_eq!(
        call(&host, &k, "fail", json!({"kind": "slow", "n": 7000})).await,
        DynamicOutcome::ConnectorError {
            kind: "rate-limited".into(),
            error: json!({"retry-after-ms": 7000, "message": "slow"})
        }
    );
    for kind in ["retryable", "permanent", "unauthorized"] {
        assert_eq!(
            call(&host, &k, "fail", json!({"kind": kind, "n": 0})).await,
            DynamicOutcome::ConnectorError {
                kind: kind.into(),
                error: json!({"code": "test", "message": format!("asked for {kind}")})
            }
        );
    }
    // The raw form keeps the whole result.
    let inst = installation("kinds-raw").build();
    let raw =
        dynamic::invoke_raw(&host.runtime, &k, &inst, "health-check", Value::Null).await.unwrap().outcome.unwrap();
    assert_eq!(raw, json!({"ok": {"status": "healthy", "message": "kinds"}}));
    // Only operations are reachable, raw or not: the guest's own interface is not.
    for name in ["fail", "kinds.fail", "kinds.health-check", "patchbay-test:kinds/kinds#fail"] {
        let input = json!({"kind": "permanent", "n": 0});
        let err = dynamic::invoke_raw(&host.runtime, &k, &inst, name, input.clone()).await.unwrap_err();
        assert_eq!(err.code(), "unknown_operation", "{name}");
        assert_eq!(
            err.to_string(),
            format!("unknown operation {name:?}; available: health-check, validate-credentials"),
            "{name}"
        );
        let err = invoke(&host.runtime, &k, &inst, name, input).await.unwrap_err();
        assert_eq!(err.code(), "unknown_operation", "{name}");
    }
    assert!(!host.log_text(&inst).contains("fail"), "{}", host.log_text(&inst));
}

#[tokio::test]
async fn traps_and_limits_go_through_the_call_report() {
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);
    let inst = installation("kinds-trap").build();
    let r = dynamic::invoke_export(&host.runtime, &k, &inst, "boom", json!({"message": "kaboom"})).await.unwrap();
    match &r.outcome {
        Err(CallError::Trap { message }) => assert!(message.contains("kaboom"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    let log = host.log_text(&inst);
    assert!(log.contains("call kinds.boom failed"), "{log}");

    let hostile = host.load(components::HOSTILE);
    let inst = installation("loop").limits(|l| l.timeout = Duration::from_millis(300)).build();
    let input = json!({"req": {"entity": "infinite-loop", "mode": "full", "limit": 1}});
    let r = invoke(&host.runtime, &hostile, &inst, "read-batch", input).await.unwrap();
    assert_eq!(r.outcome, Err(CallError::DeadlineExceeded { limit_ms: 300 }));

    let inst = installation("ok").build();
    let r = invoke(&host.runtime, &hostile, &inst, "health-check", Value::Null).await.unwrap();
    assert!(r.outcome.unwrap().is_ok());
    assert!(r.fuel_consumed.is_some_and(|f| f > 0));
    assert!(host.log_text(&inst).contains("call lifecycle.health-check completed"));
}

fn notification(subject: &str) -> Value {
    json!({"notification": {
        "to": [{"address": "#deploys"}], "cc": [], "bcc": [], "subject": subject, "text": "v1.2 is live",
        "attachments": [], "categories": [], "metadata": [], "idempotency-key": "k-1"
    }})
}

#[tokio::test]
async fn notify_webhook_send_through_invoke() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let c = host.load(components::NOTIFY_WEBHOOK);
    let inst = installation("notify")
        .config("webhook_url", &server.url("/slack"))
        .secret("token", "xoxb-token")
        .allow("{{config.webhook_url}}")
        .build();
    let r = invoke(&host.runtime, &c, &inst, "send", notification("Deploy")).await.unwrap();
    assert_eq!(r.http_requests, 1);
    assert_eq!(r.outcome.unwrap(), DynamicOutcome::Ok(json!({"id": null, "accepted": ["#deploys"], "rejected": []})));
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/slack");
    assert_eq!(got[0].header("authorization").as_deref(), Some("Bearer xoxb-token"));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert!(body["text"].as_str().unwrap().contains("Deploy"), "{body}");

    for (path, kind) in [("/status/429", "rate-limited"), ("/status/503", "retryable"), ("/status/404", "permanent")] {
        let inst =
            installation("notify").config("webhook_url", &server.url(path)).allow("{{config.webhook_url}}").build();
        let out =
            invoke(&host.runtime, &c, &inst, "notifications.send", notification("s")).await.unwrap().outcome.unwrap();
        let DynamicOutcome::ConnectorError { kind: got, error } = out else { panic!("{path}: {out:?}") };
        assert_eq!(got, kind, "{path}: {error}");
        assert!(error["message"].is_string(), "{error}");
        if kind == "rate-limited" {
            assert_eq!(error["retry-after-ms"], 7000, "{error}");
        } else {
            assert!(error["code"].is_string(), "{error}");
        }
    }
    // Bad input never reaches the server.
    let before = server.received().len();
    let err = invoke(&host.runtime, &c, &inst, "send", json!({"notification": {"to": "x"}})).await.unwrap_err();
    assert!(err.to_string().starts_with("invalid input: notification"), "{err}");
    assert_eq!(server.received().len(), before);
}

#[test]
fn every_operation_has_a_schema() {
    let host = Host::new(&[]);
    // The Python and JavaScript connectors implement the same world as notify-webhook (and take
    // tens of seconds to compile); `polyglot` checks their operations.
    let polyglot = [components::NOTIFY_DISCORD, components::NOTIFY_NTFY];
    for (name, path) in components::ALL.iter().filter(|(_, p)| !polyglot.contains(p)) {
        let c = host.load(path);
        for op in c.operations() {
            let s = operation_schema(op);
            assert_eq!(s["name"], op.name.as_str(), "{name}");
            assert_eq!(s["interface"], op.interface.as_str());
            assert_eq!(s["input"]["$schema"], "https://json-schema.org/draft/2020-12/schema");
            assert_eq!(s["input"]["additionalProperties"], false);
            assert!(s["output"].is_object(), "{name} {}", op.name);
            let params: Vec<&String> = s["input"]["properties"].as_object().unwrap().keys().collect();
            assert_eq!(params.len(), op.params.len(), "{name} {}", op.name);
            // Only operations with resources mention a type without JSON form.
            assert_eq!(s.to_string().contains("no JSON form"), op.unsupported().is_some(), "{name} {}", op.name);
        }
    }

    let notify = host.load(components::NOTIFY_WEBHOOK);
    let s = operation_schema(op(&notify, "send"));
    assert_eq!(s["qualified_name"], "notifications.send");
    assert_eq!(s["input"]["required"], json!(["notification"]));
    let n = &s["input"]["properties"]["notification"];
    assert_eq!(n["type"], "object");
    assert_eq!(n["additionalProperties"], false);
    let required: Vec<&str> = n["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(required.contains(&"idempotency-key") && required.contains(&"to"), "{required:?}");
    assert!(!required.contains(&"subject") && !required.contains(&"from"), "{required:?}");
    assert_eq!(n["properties"]["subject"], json!({"anyOf": [{"type": "string"}, {"type": "null"}]}));
    assert_eq!(n["properties"]["send-at"]["anyOf"][0], json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}));
    assert_eq!(n["properties"]["metadata"]["items"]["prefixItems"], json!([{"type": "string"}, {"type": "string"}]));
    let content = &n["properties"]["attachments"]["items"]["properties"]["content"];
    assert_eq!(content["anyOf"][0], json!({"type": "string", "contentEncoding": "base64"}));
    assert_eq!(content["anyOf"][1]["items"], json!({"type": "integer", "minimum": 0, "maximum": 255}));

    // Outputs: every field required, options nullable, connector errors as a oneOf of cases.
    let out = &s["output"];
    let ok = &out["oneOf"][0]["properties"]["ok"];
    assert_eq!(ok["required"], json!(["id", "accepted", "rejected"]));
    let err = &out["oneOf"][1]["properties"]["err"]["oneOf"];
    let cases: Vec<String> =
        err.as_array().unwrap().iter().map(|c| c["required"][0].as_str().unwrap().to_string()).collect();
    assert_eq!(cases, ["retryable", "permanent", "rate-limited", "unauthorized"]);
    assert_eq!(
        err[2]["properties"]["rate-limited"]["properties"]["retry-after-ms"],
        json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
    );

    let health = operation_schema(op(&notify, "health-check"));
    assert_eq!(health["input"]["type"], json!(["object", "null"]));
    assert_eq!(
        health["output"]["oneOf"][0]["properties"]["ok"]["properties"]["status"],
        json!({"type": "string", "enum": ["healthy", "degraded", "unhealthy"]})
    );

    let github = host.load(components::GITHUB);
    let verification = &operation_schema(op(&github, "verify"))["output"]["oneOf"][0]["properties"]["ok"];
    assert_eq!(verification["oneOf"][0]["required"], json!(["valid"]));
    assert_eq!(verification["oneOf"][0]["properties"]["valid"]["anyOf"][1], json!({"type": "null"}));

    let k = host.load(components::KINDS);
    let scalars = type_schema(&param_type(&k, "echo-scalars"), Direction::Output);
    let p = &scalars["properties"];
    assert_eq!(p["tiny"], json!({"type": "integer", "minimum": -128, "maximum": 127}));
    assert_eq!(p["long"]["minimum"], json!(i64::MIN));
    assert_eq!(p["single"], json!({"type": ["number", "null"]}));
    assert_eq!(p["letter"], json!({"type": "string", "minLength": 1, "maxLength": 1}));
    let input = type_schema(&param_type(&k, "echo-scalars"), Direction::Input);
    assert_eq!(input["properties"]["double"], json!({"type": "number"}));
    let nested = type_schema(&param_type(&k, "echo-nested"), Direction::Input);
    let p = &nested["properties"];
    assert_eq!(p["perms"]["items"]["enum"], json!(["read", "write", "admin-access"]));
    assert_eq!(
        p["pair"]["prefixItems"],
        json!([{"type": "integer", "minimum": 0, "maximum": u32::MAX}, {"type": "string"}])
    );
    assert_eq!(p["pair"]["items"], false);
    assert_eq!(p["shapes"]["items"]["oneOf"][0], json!({"type": "string", "enum": ["point"]}));
    // Inputs also allow `{"point": null}`.
    assert_eq!(p["shapes"]["items"]["oneOf"][1]["properties"]["point"], json!({"type": "null"}));
    assert_eq!(p["unit-result"]["oneOf"][0]["properties"]["ok"], json!({"type": "null"}));
    let nothing = operation_schema(op(&k, "nothing"));
    assert_eq!(nothing["output"]["type"], "null");
}

#[tokio::test]
async fn resources_are_refused_before_running() {
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);
    let make = op(&k, "make-counter");
    assert_eq!(make.unsupported().as_deref(), Some("the result contains a resource, which has no JSON form"));
    let Some(own) = make.result.clone() else { panic!("make-counter has a result") };
    let e = mapping_error(&own, json!(1));
    assert_eq!(e.to_string(), "values of type own<resource> cannot be given as JSON");
    let schema = operation_schema(make);
    assert_eq!(schema["output"]["not"], json!({}));

    let inst = installation("kinds-res").build();
    let err = dynamic::invoke_export(&host.runtime, &k, &inst, "make-counter", json!({"start": 1})).await.unwrap_err();
    assert_eq!(err.code(), "unsupported_operation");
    assert_eq!(
        err.to_string(),
        "operation kinds.make-counter cannot be called with JSON: the result contains a resource, which has no JSON form"
    );
    assert!(host.logs(&inst).is_empty());
}

#[test]
fn untyped_output_matches_typed_output_for_real_values() {
    let host = Host::new(&[]);
    let k = host.load(components::KINDS);
    let ty = param_type(&k, "echo-nested");
    let val = json_to_val(&ty, &nested()).unwrap();
    assert_eq!(val_to_json(&val), nested());
    // Without the type an empty byte list cannot be told from an empty list.
    let mut v = nested();
    v["bytes"] = json!("");
    let val = json_to_val(&ty, &v).unwrap();
    assert_eq!(val_to_json(&val)["bytes"], json!([]));
    assert_eq!(val_to_json_typed(&ty, &val)["bytes"], json!(""));
}
