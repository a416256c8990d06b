//! The OpenAPI 3.1 description of the admin API, served at `/openapi.json`.
//!
//! Written by hand next to the router; a test checks that every endpoint the router is built
//! from ([`crate::endpoints`]) is described here and nothing else is.

use serde_json::{Value, json};

use crate::cursor::{self, List};

fn err_ref() -> Value {
    json!({ "$ref": "#/components/responses/Error" })
}

/// Standard error responses plus the given success responses.
fn responses(ok: &[(&str, &str, Value)], errors: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for (code, desc, schema) in ok {
        let mut r = json!({ "description": desc });
        if !schema.is_null()
            && let Some(o) = r.as_object_mut()
        {
            o.insert("content".into(), json!({ "application/json": { "schema": schema } }));
        }
        m.insert((*code).into(), r);
    }
    for code in errors {
        m.insert((*code).into(), err_ref());
    }
    Value::Object(m)
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": desc, "schema": { "type": "string" } })
}

fn query_param(name: &str, desc: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": schema })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn obj() -> Value {
    json!({ "type": "object" })
}

// ---------------------------------------------------------------------------------------------
// Schemas of the values the handlers check, stated exactly as the server reads them (the
// functions named in each comment are the rules). Patterns are ECMA-262 that Python's `re` reads
// the same way: no `\p{…}`, no `\d` or `\s` (their ranges differ between engines), `\uXXXX`
// escapes only.
// ---------------------------------------------------------------------------------------------

/// The same schema, also admitting `null` (for `Option` fields, where `null` means "left out").
fn nullable(mut schema: Value) -> Value {
    if let Some(list) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        list.push(Value::Null);
        return schema;
    }
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema["type"] = json!([t, "null"]);
            schema
        }
        Some(Value::Array(mut types)) => {
            if !types.contains(&json!("null")) {
                types.push(json!("null"));
            }
            schema["type"] = Value::Array(types);
            schema
        }
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

/// A JSON number the server reads into an `i64`.
fn int64() -> Value {
    json!({ "type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX })
}

/// A JSON number the server reads into a `u64` of at least `min`.
fn uint64(min: u64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": u64::MAX })
}

/// A JSON number the server reads into a `u32` of at least `min`.
fn uint32(min: u32) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": u32::MAX })
}

/// `?limit=`: `page_limit` (error.rs), a `u32` in 1..=1000.
fn page_limit_param() -> Value {
    query_param(
        "limit",
        "Page size, 1..=1000 (default 100)",
        json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
    )
}

/// `?cursor=` of `list` (`crate::cursor`): its exact format, so that every cursor the document
/// admits is one the server reads; `legacy` adds what else the parameter still accepts.
fn cursor_schema(list: List) -> Value {
    json!({ "type": "string", "maxLength": cursor::max_length(list), "pattern": cursor::pattern(list) })
}

fn cursor_param(list: List) -> Value {
    query_param(
        "cursor",
        "`next_cursor` of the previous page (left out or empty: the first page). Opaque: a position in the list's order, still valid after its row is deleted; anything but a cursor of this list is a 400 naming `cursor`",
        cursor_schema(list),
    )
}

/// `cursor` and `limit`: the paging every list takes.
fn paging(list: List) -> [Value; 2] {
    [cursor_param(list), page_limit_param()]
}

/// A page's body: `items` under `key`, then `next_cursor`, plus any `more` properties.
fn page_of(key: &str, items: Value, more: Value) -> Value {
    let mut properties = json!({
        key: { "type": "array", "items": items },
        "next_cursor": { "type": ["string", "null"],
            "description": "The `cursor` of the next page; null on the last page" }
    });
    if let (Some(p), Value::Object(more)) = (properties.as_object_mut(), more) {
        p.extend(more);
    }
    json!({ "type": "object", "required": [key, "next_cursor"], "properties": properties })
}

/// Unicode White_Space, what Rust's `char::is_whitespace`, `str::trim` and `split_whitespace`
/// skip (a character-class body).
const WHITE_SPACE: &str = r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A string of at most `bytes` bytes of UTF-8 (`text_param`, error.rs; route names). JSON Schema
/// counts characters, so this states a sufficient form: as many ASCII characters, half as many
/// up to U+07FF, a third as many in the BMP, or a quarter as many of any.
fn utf8_at_most(bytes: usize) -> Value {
    json!({ "type": "string", "anyOf": [
        { "maxLength": bytes, "pattern": r"^[\u0000-\u007F]*$" },
        { "maxLength": bytes / 2, "pattern": r"^[\u0000-\u07FF]*$" },
        { "maxLength": bytes / 3, "pattern": r"^[\u0000-\uFFFF]*$" },
        { "maxLength": bytes / 4 }
    ] })
}

/// The character class `[lo-hi]` of two ASCII digits (one digit when they are equal).
fn digit_class(lo: u8, hi: u8) -> String {
    if lo == hi { char::from(lo).to_string() } else { format!("[{}-{}]", char::from(lo), char::from(hi)) }
}

/// The decimal numerals of `0..=max`, leading zeros allowed (as Rust's integer parsing reads
/// them), as an unanchored regex.
fn numeral_at_most(max: u64) -> String {
    let digits = max.to_string();
    let d = digits.as_bytes();
    let n = d.len();
    let mut alts = Vec::new();
    // Fewer significant digits than `max`.
    match n {
        1 => {}
        2 => alts.push("[0-9]".to_string()),
        _ => alts.push(format!("[0-9]{{1,{}}}", n - 1)),
    }
    for i in 0..n {
        // The first digit of a numeral as long as `max` is not 0 (its leading zeros are `0*`'s).
        let lowest = if i == 0 && n > 1 { b'1' } else { b'0' };
        if d[i] > lowest {
            let tail = match n - i - 1 {
                0 => String::new(),
                1 => "[0-9]".to_string(),
                rest => format!("[0-9]{{{rest}}}"),
            };
            alts.push(format!("{}{}{tail}", &digits[..i], digit_class(lowest, d[i] - 1)));
        }
    }
    alts.push(digits.clone());
    format!("0*(?:{})", alts.join("|"))
}

/// The decimal numerals of `1..=max` (`max` ≥ 1), leading zeros allowed, as an unanchored regex.
fn positive_numeral_at_most(max: u64) -> String {
    let digits = max.max(1).to_string();
    let d = digits.as_bytes();
    let n = d.len();
    let mut alts = Vec::new();
    // Fewer significant digits than `max`, the first not 0.
    match n {
        1 => {}
        2 => alts.push("[1-9]".to_string()),
        _ => alts.push(format!("[1-9][0-9]{{0,{}}}", n - 2)),
    }
    for i in 0..n {
        let lowest = if i == 0 { b'1' } else { b'0' };
        if d[i] > lowest {
            let tail = match n - i - 1 {
                0 => String::new(),
                1 => "[0-9]".to_string(),
                rest => format!("[0-9]{{{rest}}}"),
            };
            alts.push(format!("{}{}{tail}", &digits[..i], digit_class(lowest, d[i] - 1)));
        }
    }
    alts.push(digits.clone());
    format!("0*(?:{})", alts.join("|"))
}

/// A retention age of at most `max_secs` (`parse_age`, services/retention.rs): digits and one of
/// `s m h d`, at least one second.
fn age_pattern(max_secs: u64) -> String {
    let ages: Vec<String> = [("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400)]
        .iter()
        .filter(|(_, scale)| max_secs >= *scale)
        .map(|(unit, scale)| format!("{}{unit}", positive_numeral_at_most(max_secs / scale)))
        .collect();
    format!("^(?:{})$", ages.join("|"))
}

/// What `i64::from_str` accepts: an optional sign and digits, within `i64`.
fn int64_numeral() -> String {
    format!("(?:\\+?{}|-{})", numeral_at_most(i64::MAX.unsigned_abs()), numeral_at_most(i64::MIN.unsigned_abs()))
}

/// `?since=` / `?until=`: `patchbay_core::timefmt::parse_time_param` — unix milliseconds (an
/// `i64`), an age (digits and one of `s m h d`, at most `i64::MAX` milliseconds), or what
/// `parse_rfc3339` reads: `YYYY-MM-DD`, `T`, `t` or a space, `HH:MM:SS`, an optional fraction,
/// then `Z`, `z` or `±HH:MM`, where each two-digit field may also be a sign and one digit and
/// the day is 1-31 in any month.
fn time_pattern() -> String {
    let ages: Vec<String> = [("s", 1_000u64), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        .iter()
        .map(|(unit, ms)| format!("{}{unit}", numeral_at_most(i64::MAX.unsigned_abs() / ms)))
        .collect();
    let rfc3339 = concat!(
        r"(?:[0-9]{4}|[+-][0-9]{3})-(?:0[1-9]|1[0-2]|\+[1-9])-(?:0[1-9]|[12][0-9]|3[01]|\+[1-9])[Tt ]",
        r"(?:[01][0-9]|2[0-3]|[+-][0-9]):(?:[0-5][0-9]|[+-][0-9]):(?:[0-5][0-9]|60|[+-][0-9])(?:\.[0-9]+)?",
        r"(?:[Zz]|[+-](?:[0-9]{2}|[+-][0-9]):(?:[0-9]{2}|[+-][0-9]))"
    );
    format!("^(?:{}|{}|{rfc3339})$", int64_numeral(), ages.join("|"))
}

fn time_query(name: &str, desc: &str) -> Value {
    query_param(name, desc, json!({ "$ref": "#/components/schemas/Time" }))
}

/// The canonical decimal numerals (no leading zero) of `lo..=hi`, both below 100.
fn small_range(lo: u8, hi: u8) -> String {
    let d = |v: u8| b'0' + v;
    let mut alts = Vec::new();
    if lo <= 9 {
        alts.push(digit_class(d(lo), d(hi.min(9))));
    }
    if hi >= 10 {
        let l = lo.max(10);
        let (lt, lu, ht, hu) = (l / 10, l % 10, hi / 10, hi % 10);
        if lt == ht {
            alts.push(format!("{lt}{}", digit_class(d(lu), d(hu))));
        } else {
            let (mut full_from, mut full_to) = (lt, ht);
            if lu != 0 {
                alts.push(format!("{lt}{}", digit_class(d(lu), b'9')));
                full_from += 1;
            }
            if hu != 9 {
                full_to -= 1;
            }
            if full_from <= full_to {
                alts.push(format!("{}[0-9]", digit_class(d(full_from), d(full_to))));
            }
            if hu != 9 {
                alts.push(format!("{ht}{}", digit_class(b'0', d(hu))));
            }
        }
    }
    alts.join("|")
}

/// `a|b|…` as one regex atom: grouped when there is more than one alternative.
fn one_of(alts: &[String]) -> String {
    match alts {
        [one] => one.clone(),
        _ => format!("(?:{})", alts.join("|")),
    }
}

/// A name, in any case: `[Jj][Aa][Nn]`.
fn any_case(name: &str) -> String {
    name.chars().map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())).collect()
}

/// One field of a cron expression (`FieldSpec::parse`, sync/cron.rs): a comma-separated list of
/// `*`, a value or a range `a-b` with `a <= b` (values as numbers, leading zeros allowed, or as
/// names in any case), each with an optional step `/n`, 1 <= n <= the field's span.
fn cron_field(min: u8, max: u8, names: &[&str]) -> String {
    let numeral = |lo: u8, hi: u8| {
        let digits = small_range(lo, hi);
        if digits.contains('|') { format!("0*(?:{digits})") } else { format!("0*{digits}") }
    };
    let named = |v: u8| names.get(usize::from(v - min)).map(|n| any_case(n));
    // The values `lo..=max`, as numbers or names.
    let from =
        |lo: u8| -> Vec<String> { std::iter::once(numeral(lo, max)).chain((lo..=max).filter_map(&named)).collect() };
    let ranges: Vec<String> = (min..=max)
        .map(|a| {
            let value: Vec<String> = std::iter::once(numeral(a, a)).chain(named(a)).collect();
            format!("{}-{}", one_of(&value), one_of(&from(a)))
        })
        .collect();
    let mut choices = vec![r"\*".to_string()];
    choices.extend(from(min));
    choices.extend(ranges);
    let element = format!("{}(?:/{})?", one_of(&choices), numeral(1, max - min + 1));
    format!("{element}(?:,{element})*")
}

/// `cron`: `CronExpr::from_str` (sync/cron.rs) — five fields separated by white space, or a macro.
fn cron_pattern() -> String {
    let months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    let days = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let fields = [
        cron_field(0, 59, &[]),
        cron_field(0, 23, &[]),
        cron_field(1, 31, &[]),
        cron_field(1, 12, &months),
        cron_field(0, 7, &days),
    ];
    let macros: Vec<String> = ["yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"]
        .iter()
        .map(|m| any_case(m))
        .collect();
    let ws = format!("[{WHITE_SPACE}]");
    format!("^{ws}*(?:{}|@(?:{})){ws}*$", fields.join(&format!("{ws}+")), macros.join("|"))
}

/// `normalize_name` (installations/rules.rs): 1-100 characters, not only white space, none of
/// them a control or invisible formatting character.
fn installation_name() -> Value {
    const INVISIBLE: &str =
        r"\u0000-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u206F\uFEFF";
    const SPACE: &str = r" \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
    json!({ "type": "string", "minLength": 1, "maxLength": 100,
        "pattern": format!("^[^{INVISIBLE}]*[^{INVISIBLE}{SPACE}][^{INVISIBLE}]*$"),
        "description": "1-100 characters (after Unicode NFC normalization), unique within the tenant; not only white space; no control characters (U+0000-U+001F, U+007F-U+009F) and no invisible formatting characters (U+00AD, U+061C, U+180E, U+200B-U+200F, U+202A-U+202E, U+2060-U+206F, U+FEFF)" })
}

/// A route's `name` (`Routes::check_route`): 1-100 bytes of UTF-8 once white space is trimmed.
fn route_name() -> Value {
    let mut s = utf8_at_most(100);
    s["pattern"] = json!(format!("[^{WHITE_SPACE}]"));
    s["description"] = json!(
        "Unique within the tenant; 1-100 bytes of UTF-8 once leading and trailing white space is trimmed (stored trimmed)"
    );
    s
}

/// `event_types` (`check_glob`, routing.rs): 1 to 32 globs of 1-200 letters, digits, `. _ - : /`
/// and `*` (any run of characters).
fn event_type_globs() -> Value {
    json!({ "type": "array", "minItems": 1, "maxItems": 32,
        "items": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[A-Za-z0-9._:/*-]*$" },
        "description": "Globs: `*` is any run of characters, dots included", "examples": [["expense.*"]] })
}

/// `retry_schedule` (`check_retry_schedule`, routing.rs): 1 to 32 delays of at most 7 days.
fn retry_schedule() -> Value {
    json!({ "type": "array", "minItems": 1, "maxItems": 32,
        "items": { "type": "integer", "minimum": 0, "maximum": 604_800 },
        "description": "Delays in seconds (each at most 604800, 7 days)" })
}

/// A route's `filter` (`Filter::parse`, routing.rs): at most 32 dotted payload paths, each to a
/// value (equality) or an object with exactly one operator.
fn route_filter() -> Value {
    json!({ "type": "object", "maxProperties": 32,
        "propertyNames": { "pattern": r"^[^.]+(?:\.[^.]+)*$" },
        "additionalProperties": { "anyOf": [
            { "type": ["string", "number", "boolean", "null", "array"], "description": "Equality" },
            { "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
                "properties": {
                    "eq": {}, "ne": {}, "in": { "type": "array" }, "nin": { "type": "array" },
                    "gt": { "type": ["number", "string"] }, "gte": { "type": ["number", "string"] },
                    "lt": { "type": ["number", "string"] }, "lte": { "type": ["number", "string"] },
                    "exists": { "type": "boolean" }, "prefix": { "type": "string" } } }
        ] },
        "description": "Payload path (`customer.country`, `items.0.sku`) → value, or {eq|ne|in|nin|gt|gte|lt|lte|exists|prefix: …}; at most 32" })
}

/// The body of `POST /v1/routes` (`CreateRoute`) or, with `patch`, of `PATCH /v1/routes/{id}`
/// (`UpdateRoute`: absent fields stay; `null` clears the optional ones and leaves the others).
fn route_input(patch: bool) -> Value {
    let opt = |schema: Value| if patch { nullable(schema) } else { schema };
    let mut s = json!({ "type": "object", "additionalProperties": false,
        "properties": {
            "name": opt(route_name()),
            "event_types": opt(event_type_globs()),
            "source_installation": { "type": ["string", "null"], "description": "Only events from this installation; null for any" },
            "filter": nullable(route_filter()),
            "destination_installation": opt(json!({ "type": "string" })),
            "operation": opt(json!({ "type": "string", "description": "An operation the destination's connector exports" })),
            "payload_template": { "$ref": "#/components/schemas/PayloadTemplate" },
            "retry_schedule": nullable(retry_schedule()),
            "enabled": if patch { json!({ "type": ["boolean", "null"] }) } else { json!({ "type": "boolean", "default": true }) }
        } });
    if !patch {
        s["required"] = json!(["name", "event_types", "destination_installation", "operation"]);
    }
    s
}

/// A string of a payload template (`check_template`, routing.rs): every `{{` opens a placeholder
/// closed by the next `}}`, whose path (trimmed) is `event`, `delivery` or `route` followed by
/// non-empty `.`-separated segments.
fn template_string_pattern() -> String {
    let ws = format!("[{WHITE_SPACE}]");
    // Outside placeholders: no `{{` (a `{` is followed by another character, except at the end).
    let text = r"(?:[^{]|\{[^{])*";
    // Inside: characters up to the first `}}` (a `}` is followed by something else).
    let unit = r"(?:[^.}]|\}[^.}])";
    let middle = format!(r"(?:{unit}+\}}?|\}})");
    let last = format!(r"(?:{unit}*(?:[^.}}{WHITE_SPACE}]|\}}[^.}}{WHITE_SPACE}]){ws}*|{unit}*\}}{ws}+)");
    let placeholder = format!(r"\{{\{{{ws}*(?:event|delivery|route)(?:(?:\.{middle})*\.{last}|{ws}*)\}}\}}");
    format!(r"^{text}(?:{placeholder}{text})*\{{?$")
}

/// `limits` (`LimitsSpec::validate`, installations/rules.rs).
fn limits() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "timeout_ms": nullable(json!({ "type": "integer", "minimum": 1, "maximum": 60_000,
                "description": "Call deadline: 1 ms up to the host's longest call timeout, PATCHBAY_MAX_CALL_TIMEOUT_MS (60000 unless the operator sets it, at most 3600000)" })),
            "memory_mib": nullable(json!({ "type": "integer", "minimum": 1, "maximum": 256 })),
            "fuel": nullable(uint64(1)),
            "rate_limits": nullable(json!({ "type": "array", "maxItems": 4, "uniqueItems": true,
                "description": "The provider budget instead of the manifest's: token buckets, each window (`per_seconds`) at most once",
                "items": { "type": "object", "required": ["requests", "per_seconds"], "additionalProperties": false,
                    "properties": {
                        "requests": uint32(1),
                        "per_seconds": { "type": "integer", "minimum": 1, "maximum": 2_678_400 },
                        "burst": nullable(uint32(1)) } } }))
        }
    })
}

/// A path into a record (`Path::parse`, sync/mapping.rs): non-empty `.`-separated segments where
/// `\.` and `\\` are the only escapes.
const MAPPING_PATH: &str = r"^(?:[^.\\]|\\[.\\])+(?:\.(?:[^.\\]|\\[.\\])+)*$";

/// Shared value schemas: times, cron expressions, and the field mapping of
/// `PUT …/mappings/{entity}` (`Mapping::parse`, sync/mapping.rs; not stated here: two fields may
/// not write the same target or one inside the other, `a` and `a.b`).
fn value_schemas() -> Value {
    let one = |name: &str, schema: Value| json!({ "type": "object", "required": [name], "additionalProperties": false, "properties": { name: schema } });
    let path = json!({ "type": "string", "pattern": MAPPING_PATH });
    json!({
        "Time": { "type": "string", "pattern": time_pattern(),
            "description": "Unix milliseconds, an age before now (digits and s, m, h or d), or an RFC 3339 time",
            "examples": ["2026-11-21T23:05:09.123Z", "1795302309123", "15m", "7d"] },
        "Cron": { "type": "string", "pattern": cron_pattern(),
            "description": "5-field cron expression (minute hour day-of-month month day-of-week; names JAN-DEC, SUN-SAT; lists, ranges and steps), UTC, or @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly. An expression no date satisfies (`0 0 30 2 *`) is refused.",
            "examples": ["*/15 * * * *", "0 9 * * MON-FRI"] },
        "Mapping": { "type": "object", "additionalProperties": false,
            "description": "No two fields may write the same target, nor one target inside another (`a` and `a.b`): 422 invalid_mapping",
            "properties": {
                "keep_unmapped": { "type": "boolean", "default": false },
                "fields": { "type": "array", "maxItems": 500, "uniqueItems": true,
                    "items": { "$ref": "#/components/schemas/MappingField" } } } },
        "MappingField": { "type": "object", "required": ["target"], "additionalProperties": false,
            "properties": {
                "target": path.clone(), "source": path, "constant": {},
                "transform": { "type": "array", "items": { "$ref": "#/components/schemas/MappingTransform" } },
                "default": {}, "required": { "type": "boolean" } },
            "description": "Exactly one of `source` and `constant`; `transform`, `default` and `required` only with a `source`; `required: true` excludes `default`",
            "oneOf": [
                { "required": ["constant"], "properties": { "source": false, "transform": false, "default": false, "required": false } },
                { "required": ["source"], "properties": { "constant": false, "default": false } },
                { "required": ["source", "default"], "properties": { "constant": false, "required": { "const": false } } }
            ] },
        "MappingTransform": { "oneOf": [
            { "enum": ["trim", "lowercase", "uppercase", "string", "number", "integer", "boolean", "round",
                "null_if_empty", "timestamp_ms", "iso8601"] },
            one("multiply", json!({ "type": "number" })),
            one("divide", json!({ "type": "number", "anyOf": [{ "exclusiveMinimum": 0 }, { "exclusiveMaximum": 0 }] })),
            one("round", json!({ "type": "integer", "minimum": 0, "maximum": 15 })),
            one("replace", json!({ "type": "array", "minItems": 2, "maxItems": 2,
                "prefixItems": [{ "type": "string", "minLength": 1 }, { "type": "string" }] })),
            one("split", json!({ "type": "string", "minLength": 1 })),
            one("join", json!({ "type": "string" })),
            one("prefix", json!({ "type": "string" })),
            one("suffix", json!({ "type": "string" })),
            one("truncate", uint64(0)),
            one("default", json!({})),
            { "type": "object", "required": ["map"], "additionalProperties": false,
                "properties": { "map": { "type": "object" }, "else": {} } }
        ] }
    })
}

/// The body of `POST /v1/syncs` and the stream of `POST /v1/schedules` (`StartSync`,
/// `CreateSchedule`, `Syncs::check_stream`).
fn stream_input() -> Value {
    json!({ "type": "object", "required": ["installation", "entity"], "additionalProperties": false,
        "properties": {
            "installation": { "type": "string", "description": "A data-sync installation" },
            "entity": { "type": "string", "minLength": 1, "description": "An entity its connector offers" },
            "direction": nullable(json!({ "enum": ["import", "export"], "default": "import" })),
            "mode": nullable(json!({ "enum": ["full", "incremental"], "default": "full" })),
            "source": nullable(json!({ "type": "object", "required": ["installation", "entity"], "additionalProperties": false,
                "description": "Exports only (and required by them): the records written",
                "properties": { "installation": { "type": "string" }, "entity": { "type": "string", "minLength": 1 } } }))
        },
        "anyOf": [
            { "properties": { "direction": { "enum": ["import", null] }, "source": { "type": "null" } } },
            { "required": ["direction", "source"], "properties": { "direction": { "const": "export" }, "source": { "type": "object" } } }
        ]
    })
}

/// The document.
pub(crate) fn document() -> Value {
    let installation_id = path_param("id", "Installation id (`ins_…`).");
    let limits = limits();
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "patchbay admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Upload WebAssembly connectors, install and configure them per tenant, set their \
                encrypted credentials, invoke their operations with JSON and read their operation logs. \
                Authenticate with `Authorization: Bearer <token>`: the operator token manages tenants and the \
                public catalog; tenant API keys (scopes `view`, `manage`, `credentials`) manage that tenant's \
                installations. Errors are `{\"error\": {\"code\", \"message\"}}`. Every list pages the same way: \
                `limit` (1..=1000, default 100) and an opaque `cursor`, the `next_cursor` of the previous page, which is \
                null on the last page; each list's order is stated with it and never changes between pages."
        },
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "examples": ["not_found", "invalid_manifest", "connector_error"] },
                            "message": { "type": "string" },
                            "kind": { "type": "string", "description": "Connector error kind (retryable, permanent, rate-limited, unauthorized) or call failure kind." },
                            "details": {}
                        }
                    }}
                },
                "Tenant": { "type": "object", "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" } } },
                "ApiKey": { "type": "object", "properties": {
                    "id": { "type": "string" }, "tenant": { "type": "string" }, "name": { "type": "string" },
                    "scopes": { "type": "array", "items": { "enum": ["view", "manage", "credentials"] } },
                    "token": { "type": "string", "description": "Only in the creation response." },
                    "revoked": { "type": "boolean" } } },
                "Connector": { "type": "object", "properties": {
                    "id": { "type": "string" }, "visibility": { "enum": ["public", "private"] },
                    "title": { "type": "string" }, "description": { "type": "string" },
                    "category": { "enum": ["payment-gateway", "shipping-carrier", "communication-channel",
                        "notification-provider", "storage-provider", "data-sync", "webhook-endpoint"] },
                    "provider": { "type": "string" }, "latest_version": { "type": "string" },
                    "versions": { "type": "array" } } },
                "Version": { "type": "object", "properties": {
                    "connector": { "type": "string" }, "version": { "type": "string" },
                    "digest": { "type": "string", "description": "sha256:<hex> of the component bytes" },
                    "size": { "type": "integer" }, "signed_by": { "type": ["string", "null"] },
                    "deprecation": { "type": ["object", "null"], "properties": {
                        "deprecated_at": { "type": "string" }, "sunset": { "type": ["string", "null"] }, "message": { "type": ["string", "null"] } } },
                    "state": { "enum": ["compiling", "ready", "failed"], "description": "Only `ready` versions run; calls of an installation on another state answer 409 `version_compiling` or `version_failed`" },
                    "state_message": { "type": "string", "description": "Why the compile failed (state `failed`)" },
                    "compiling": { "type": "object", "description": "While compiling: when the compile started and how long it has run",
                        "properties": { "started_at": { "type": "string" }, "elapsed_ms": { "type": "integer" } } },
                    "manifest": { "type": "object" },
                    "operations": { "type": "array", "items": { "type": "object", "properties": {
                        "name": { "type": "string" }, "interface": { "type": "string" },
                        "input": { "description": "JSON Schema of the request body" },
                        "output": { "description": "JSON Schema of the response body" } } } } } },
                "Installation": { "type": "object", "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" }, "connector": { "type": "string" },
                    "version": { "type": "string" }, "api_version": { "type": ["string", "null"] },
                    "enabled": { "type": "boolean" }, "status": { "type": "string" },
                    "config": { "type": "object" }, "limits": limits.clone(),
                    "credentials_from": { "type": ["string", "null"] }, "revision": { "type": "integer" },
                    "deprecation": { "type": ["object", "null"] }, "api_version_deprecation": { "type": ["object", "null"] } } },
                "RouteInput": route_input(false),
                "RoutePatch": route_input(true),
                "PayloadTemplate": { "anyOf": [
                    { "type": "string", "pattern": template_string_pattern() },
                    { "type": ["number", "boolean", "null"] },
                    { "type": "array", "items": { "$ref": "#/components/schemas/PayloadTemplate" } },
                    { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/PayloadTemplate" } }
                ], "description": "Any JSON; in its strings `{{path}}` placeholders start at `event`, `delivery` or `route` (see host/services/src/routing.rs). At most 16 KiB as JSON text." },
                "Route": { "type": "object",
                    "required": ["id", "revision", "name", "event_types", "destination_installation", "operation"],
                    "properties": {
                        "id": { "type": "string" }, "revision": { "type": "integer" },
                        "created_at": { "type": "string" }, "updated_at": { "type": "string" },
                        "name": { "type": "string" },
                        "event_types": { "type": "array", "items": { "type": "string" } },
                        "source_installation": { "type": ["string", "null"] },
                        "filter": { "type": ["object", "null"] },
                        "destination_installation": { "type": "string" },
                        "operation": { "type": "string" },
                        "payload_template": {},
                        "retry_schedule": { "type": ["array", "null"], "items": { "type": "integer" } },
                        "enabled": { "type": "boolean" } } },
                "Event": { "type": "object", "properties": {
                    "id": { "type": "string" }, "type": { "type": "string" }, "subject": { "type": ["string", "null"] },
                    "source_installation": { "type": "string" }, "payload": {}, "idempotency_key": { "type": "string" },
                    "created_at": { "type": "string", "format": "date-time" },
                    "deliveries": { "type": "array", "description": "Only on GET /v1/events/{id}", "items": { "type": "object" } } } },
                "LogEntry": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                    "level": { "enum": ["trace", "debug", "info", "warn", "error"] },
                    "source": { "enum": ["guest", "stdout", "stderr", "http", "host"] },
                    "message": { "type": "string" }, "fields": { "type": "object" } } }
            },
            "responses": {
                "Error": { "description": "An error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        },
        "paths": {
            "/healthz": { "get": { "summary": "Liveness and database reachability", "security": [],
                "responses": responses(&[("200", "Healthy", obj())], &["503"]) } },
            "/metrics": { "get": { "summary": "Prometheus metrics (operator)",
                "responses": { "200": { "description": "Text exposition format", "content": { "text/plain": {} } }, "401": err_ref(), "403": err_ref() } } },
            "/openapi.json": { "get": { "summary": "This document", "security": [],
                "responses": responses(&[("200", "OpenAPI 3.1", obj())], &[]) } },
            "/v1/wit": { "get": { "summary": "The WIT package connectors are built against", "security": [], "tags": ["connectors"],
                "description": "Every file of `patchbay:connector`, the package whose worlds a connector implements (the same files `patchbay wit DIR` writes). Write them into a `wit/` directory and point any toolchain at it (cargo with wit-bindgen, componentize-py, componentize-js).",
                "responses": responses(&[("200", "The package", json!({ "type": "object", "required": ["package", "version", "files"], "additionalProperties": false,
                    "properties": { "package": { "type": "string", "examples": ["patchbay:connector"] }, "version": { "type": "string", "examples": ["0.1.0"] },
                        "files": { "type": "array", "items": { "type": "object", "required": ["name", "text"], "additionalProperties": false,
                            "properties": { "name": { "type": "string", "examples": ["worlds.wit"] }, "text": { "type": "string" } } } } } }))], &[]) } },
            "/v1/tenants": {
                "post": { "summary": "Create a tenant (operator)", "tags": ["tenants"],
                    "requestBody": json_body(json!({ "type": "object", "required": ["id"], "additionalProperties": false,
                        "properties": { "id": { "type": "string", "pattern": "^[a-z][a-z0-9-]{1,62}$" },
                            "name": { "type": ["string", "null"], "description": "Default (left out or null): the id" } } })),
                    "responses": responses(&[("201", "Created", json!({ "$ref": "#/components/schemas/Tenant" }))], &["401", "403", "409", "422"]) },
                "get": { "summary": "List tenants, by id (operator)", "tags": ["tenants"],
                    "parameters": paging(List::Tenants),
                    "responses": responses(&[("200", "A page of tenants", page_of("tenants", json!({ "$ref": "#/components/schemas/Tenant" }), Value::Null))], &["400", "401", "403"]) }
            },
            "/v1/tenants/{tenant}/keys": {
                "parameters": [path_param("tenant", "Tenant id")],
                "post": { "summary": "Create a tenant API key (operator); the token is shown once", "tags": ["tenants"],
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false,
                        "properties": { "name": { "type": ["string", "null"] }, "scopes": { "type": "array", "minItems": 1, "items": { "enum": ["view", "manage", "credentials"] },
                            "description": "Default (left out): all three" } } } } } },
                    "responses": responses(&[("201", "Created", json!({ "$ref": "#/components/schemas/ApiKey" }))], &["401", "403", "404", "422"]) },
                "get": { "summary": "List a tenant's API keys, oldest first: creation time, then id (operator)", "tags": ["tenants"],
                    "parameters": paging(List::Keys),
                    "responses": responses(&[("200", "A page of keys", page_of("keys", json!({ "$ref": "#/components/schemas/ApiKey" }), Value::Null))], &["400", "401", "403", "404"]) }
            },
            "/v1/tenants/{tenant}/keys/{key}": {
                "parameters": [path_param("tenant", "Tenant id"), path_param("key", "Key id")],
                "delete": { "summary": "Revoke an API key (operator)", "tags": ["tenants"],
                    "responses": responses(&[("204", "Revoked", Value::Null)], &["401", "403", "404"]) }
            },
            "/v1/connectors": {
                "post": { "summary": "Upload a connector component", "tags": ["connectors"],
                    "description": "The body is the `.wasm` component with its embedded manifest. The operator publishes to the public catalog; a tenant key (`manage`) uploads a private connector only that tenant sees. A published version is immutable (except one whose compile failed, which a new upload replaces). The answer comes once the component compiled or after `upload_wait_ms` (3 s by default), whichever is first: a longer compile (Python and JavaScript components take 15-30 s) goes on in the background, the answer is 202 with `state: compiling`, and the version's `state` turns `ready` or `failed` (with `state_message`).",
                    "requestBody": { "required": true, "content": { "application/wasm": { "schema": { "type": "string", "contentEncoding": "binary" } } } },
                    "responses": responses(&[("201", "Published and compiled", json!({ "$ref": "#/components/schemas/Version" })), ("202", "Stored; compiling in the background", json!({ "$ref": "#/components/schemas/Version" })), ("200", "Already published with the same bytes", json!({ "$ref": "#/components/schemas/Version" }))], &["401", "403", "409", "413", "415", "422"]) },
                "get": { "summary": "List the catalog, by id (then owner: for the operator, the public connector before a tenant's private one of the same id)", "tags": ["connectors"],
                    "parameters": [
                        query_param("category", "Hub category", json!({ "enum": ["payment-gateway", "shipping-carrier", "communication-channel",
                            "notification-provider", "storage-provider", "data-sync", "webhook-endpoint"] })),
                        query_param("search", "Case-insensitive text in id, title, description or provider; at most 200 characters", json!({ "type": "string", "maxLength": 200 })),
                        cursor_param(List::Connectors), page_limit_param()
                    ],
                    "responses": responses(&[("200", "A page of connectors", page_of("connectors", json!({ "$ref": "#/components/schemas/Connector" }), Value::Null))], &["400", "401", "403"]) }
            },
            "/v1/connectors/{id}": {
                "parameters": [path_param("id", "Connector id")],
                "get": { "summary": "A connector and its versions", "tags": ["connectors"],
                    "responses": responses(&[("200", "Connector", json!({ "$ref": "#/components/schemas/Connector" }))], &["401", "403", "404"]) }
            },
            "/v1/connectors/{id}/versions/{version}": {
                "parameters": [path_param("id", "Connector id"), path_param("version", "Semver version")],
                "get": { "summary": "Manifest, digest and operations (with JSON Schemas) of a version", "tags": ["connectors"],
                    "responses": responses(&[("200", "Version", json!({ "$ref": "#/components/schemas/Version" }))], &["401", "403", "404"]) }
            },
            "/v1/connectors/{id}/versions/{version}/deprecate": {
                "parameters": [path_param("id", "Connector id"), path_param("version", "Semver version")],
                "post": { "summary": "Deprecate a version (operator for public, `manage` for private)", "tags": ["connectors"],
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false,
                        "properties": { "sunset": { "type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD after which the version may be removed" },
                            "message": { "type": ["string", "null"] } } } } } },
                    "responses": responses(&[("200", "Deprecated", json!({ "$ref": "#/components/schemas/Version" }))], &["401", "403", "404", "422"]) }
            },
            "/v1/installations": {
                "post": { "summary": "Install a connector (`manage`)", "tags": ["installations"],
                    "requestBody": json_body(json!({ "type": "object", "required": ["connector", "name"], "additionalProperties": false,
                        "properties": {
                            "connector": { "type": "string" }, "version": { "type": ["string", "null"], "description": "Default: latest" },
                            "api_version": { "type": ["string", "null"], "description": "Default: the manifest's default" },
                            "name": installation_name(),
                            "config": { "type": "object", "description": "Checked against the connector's config fields" },
                            "limits": limits.clone(), "enabled": { "type": "boolean", "default": true },
                            "credentials_from": { "type": ["string", "null"], "description": "Installation of the same bundle to share credentials with" } } })),
                    "responses": responses(&[("201", "Installed", json!({ "$ref": "#/components/schemas/Installation" }))], &["401", "403", "409", "422"]) },
                "get": { "summary": "List the tenant's installations, oldest first: creation time, then id (`view`)", "tags": ["installations"],
                    "parameters": [
                        query_param("connector", "Only installations of this connector (its id); at most 128 characters", json!({ "type": "string", "maxLength": 128 })),
                        query_param("status", "Only installations in this status (`error` after repeated failed health checks)", json!({ "enum": ["active", "error"] })),
                        query_param("name", "Only installations whose name starts with this text (case-sensitive, compared after Unicode NFC normalization; a whole name matches too); at most 100 characters, as names", json!({ "type": "string", "maxLength": 100 })),
                        cursor_param(List::Installations), page_limit_param()
                    ],
                    "responses": responses(&[("200", "A page of installations", page_of("installations", json!({ "$ref": "#/components/schemas/Installation" }), Value::Null))], &["400", "401", "403"]) }
            },
            "/v1/installations/{id}": {
                "parameters": [installation_id.clone()],
                "get": { "summary": "An installation (`view`)", "tags": ["installations"],
                    "responses": responses(&[("200", "Installation", json!({ "$ref": "#/components/schemas/Installation" }))], &["401", "403", "404"]) },
                "patch": { "summary": "Change version, API version, enabled, config, limits or name (`manage`); takes effect on the next call", "tags": ["installations"],
                    "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                        "version": { "type": ["string", "null"] },
                        "api_version": { "type": ["string", "null"], "description": "null returns to the connector's default" },
                        "enabled": { "type": ["boolean", "null"] }, "config": { "type": ["object", "null"] },
                        "limits": nullable(limits), "name": nullable(installation_name()) } })),
                    "responses": responses(&[("200", "Updated", json!({ "$ref": "#/components/schemas/Installation" }))], &["401", "403", "404", "422"]) },
                "delete": { "summary": "Uninstall: removes credentials, state and logs (`manage`)", "tags": ["installations"],
                    "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
            },
            "/v1/installations/{id}/credentials": {
                "parameters": [installation_id.clone()],
                "put": { "summary": "Replace the credentials (`credentials`); stored encrypted", "tags": ["credentials"],
                    "requestBody": json_body(json!({ "type": "object", "additionalProperties": { "type": "string", "minLength": 1 } })),
                    "responses": responses(&[("200", "Stored; secrets masked", obj())], &["401", "403", "404", "422"]) },
                "get": { "summary": "The credentials, secrets masked (`credentials`)", "tags": ["credentials"],
                    "responses": responses(&[("200", "Credentials", obj())], &["401", "403", "404"]) },
                "delete": { "summary": "Delete the credentials for good (`credentials`)", "tags": ["credentials"],
                    "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
            },
            "/v1/installations/{id}/invoke/{operation}": {
                "parameters": [installation_id.clone(), path_param("operation", "An exported function of the connector's world, e.g. `send`, `health-check`")],
                "post": { "summary": "Call an operation with JSON (`manage`)", "tags": ["installations"],
                    "description": "The body is an object keyed by the function's parameter names; the response is the function's result. See docs/json-mapping.md for the JSON ↔ WIT mapping. A connector error answers 422 (permanent), 424 (unauthorized), 429 (rate-limited, with Retry-After) or 502 (retryable) with the connector's error kind.",
                    "requestBody": { "required": false, "content": { "application/json": { "schema": obj() } } },
                    "responses": responses(&[("200", "The operation's result", json!({}))], &["400", "401", "403", "404", "409", "422", "424", "429", "502", "504"]) }
            },
            "/v1/events": {
                "get": { "summary": "The tenant's events, newest first (`view`)", "tags": ["events"],
                    "parameters": [
                        query_param("type", "Event type, exact or a glob like `expense.*`; at most 256 bytes", utf8_at_most(256)),
                        query_param("status", "Events with a delivery in this status", json!({ "enum": ["pending", "leased", "delivered", "dead"] })),
                        query_param("installation", "Source or destination installation; at most 128 bytes", utf8_at_most(128)),
                        time_query("since", "RFC 3339 time, unix ms, or an age like 15m (s, m, h, d)"),
                        time_query("until", "RFC 3339 time, unix ms, or an age like 15m (exclusive)"),
                        cursor_param(List::Events), page_limit_param()
                    ],
                    "responses": responses(&[("200", "A page of events, newest first: creation time, then id, both descending", page_of("events", json!({ "$ref": "#/components/schemas/Event" }), Value::Null))], &["400", "401", "403"]) }
            },
            "/v1/events/{id}": {
                "parameters": [path_param("id", "Event id (`evt_…`)")],
                "get": { "summary": "An event with its deliveries and every attempt (`view`)", "tags": ["events"],
                    "responses": responses(&[("200", "Event", json!({ "$ref": "#/components/schemas/Event" }))], &["401", "403", "404"]) }
            },
            "/v1/installations/{id}/logs": {
                "parameters": [installation_id],
                "get": { "summary": "The operation-log timeline (`view`)", "tags": ["installations"],
                    "parameters": [
                        query_param("level", "Minimum level: trace, debug, info, warn or error, in any case", json!({ "type": "string",
                            "pattern": "^(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn]|[Ee][Rr][Rr][Oo][Rr])$",
                            "examples": ["info"] })),
                        time_query("since", "RFC 3339 time, unix ms, or an age like 15m (s, m, h, d)"),
                        query_param("cursor", "`next_cursor` or `tail_cursor` of the previous page (left out or empty: the first page); opaque, and still valid after retention pruned its entry. An entry id in decimal (the cursors of earlier versions) is still read as the position after that entry. Anything else is a 400 naming `cursor`",
                            json!({ "anyOf": [cursor_schema(List::Logs), int64()] })),
                        page_limit_param()
                    ],
                    "responses": responses(&[("200", "A page of entries, oldest first (entry id)", page_of("entries", json!({ "$ref": "#/components/schemas/LogEntry" }), json!({
                        "tail_cursor": { "type": ["string", "null"], "description": "Where to resume to read entries logged later (to follow the log): after the last entry returned, or where this page started when it is empty; null only when a first page is empty" } })))], &["400", "401", "403", "404"]) }
            }
        }
    });
    if let (Some(schemas), Value::Object(more)) = (doc["components"]["schemas"].as_object_mut(), value_schemas()) {
        schemas.extend(more);
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), routing_paths(&installation_id)) {
        paths.extend(more);
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), sync_paths(&installation_id)) {
        paths.extend(more);
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.insert(
            "RetentionLimits".into(),
            json!({ "type": "object", "required": ["max_age", "max_count"], "properties": {
                "max_age": { "type": ["string", "null"], "description": "An age such as 7d; null: none" },
                "max_count": { "type": ["integer", "null"], "description": "Newest rows kept; null: no count" } } }),
        );
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), retention_paths()) {
        paths.extend(more);
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            let shared_params = item.get("parameters").is_some();
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(op) = item.get_mut(method) {
                    add_common_statuses(path, method, op, shared_params);
                }
            }
        }
    }
    doc
}

/// Every status an operation can answer besides its own: the error envelope for a request that
/// does not parse (400), authentication (401, 403), an unknown id (404), a body that is too large,
/// of another media type or does not fit (413, 415, 422), and an unavailable store (503).
fn add_common_statuses(path: &str, method: &str, op: &mut Value, shared_params: bool) {
    let public = op.get("security").is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
    // POST, PUT and PATCH read a JSON body when one is sent (some accept none).
    let has_body = op.get("requestBody").is_some() || matches!(method, "post" | "put" | "patch");
    let has_params = shared_params || op.get("parameters").is_some() || path.contains('{');
    let mut codes: Vec<&str> = vec!["503"];
    if !public {
        codes.extend(["401", "403"]);
    }
    if has_params || has_body {
        codes.push("400");
    }
    if path.contains('{') {
        codes.push("404");
    }
    if has_body {
        codes.extend(["413", "415", "422"]);
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { return };
    for code in codes {
        responses.entry(code.to_string()).or_insert_with(err_ref);
    }
}

/// Webhook ingress, routes and redrive (a second `json!`: one literal this size exceeds the
/// macro's recursion limit).
fn routing_paths(installation_id: &Value) -> Value {
    json!({
            "/v1/installations/{id}/webhook/rotate": {
                "parameters": [installation_id.clone()],
                "post": { "summary": "Give a webhook-endpoint installation a new webhook URL; the old one stops working (`manage`)", "tags": ["webhooks"],
                    "responses": responses(&[("200", "The new URL", json!({ "type": "object", "properties": {
                        "installation": { "type": "string" }, "webhook_url": { "type": "string" } } }))], &["401", "403", "404", "409"]) }
            },
            "/v1/installations/{id}/oauth": {
                "parameters": [installation_id.clone()],
                "get": { "summary": "The installation's OAuth grant: status, version, expiry, scope — never a token (`view`)", "tags": ["oauth"],
                    "responses": responses(&[("200", "The grant", obj())], &["401", "403", "404", "409"]) },
                "delete": { "summary": "Disconnect: revoke the refresh token at the provider (RFC 7009) and forget the grant (`credentials`)", "tags": ["oauth"],
                    "responses": responses(&[("200", "Disconnected; `revoked` says whether the provider confirmed", obj())], &["401", "403", "404", "409"]) }
            },
            "/v1/installations/{id}/oauth/start": {
                "parameters": [installation_id.clone()],
                "post": { "summary": "Start the authorization-code flow: returns the `authorize_url` (state + PKCE S256) to open in a browser (`credentials`)", "tags": ["oauth"],
                    "responses": responses(&[("200", "The authorization request", json!({ "type": "object", "properties": {
                        "authorize_url": { "type": "string" }, "redirect_uri": { "type": "string" }, "pkce": { "type": "boolean" },
                        "expires_at": { "type": "string", "format": "date-time" } } }))], &["401", "403", "404", "409"]) }
            },
            "/v1/installations/{id}/oauth/refresh": {
                "parameters": [installation_id.clone()],
                "post": { "summary": "Refresh the access token now, unless the token of `version` was already replaced (single-flight across hosts) (`credentials`)", "tags": ["oauth"],
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false,
                        "properties": { "version": nullable(int64()) } } } } },
                    "responses": responses(&[("200", "The grant after the refresh", obj())], &["401", "403", "404", "409", "422", "502"]) }
            },
            "/v1/installations/{id}/health": {
                "parameters": [installation_id.clone()],
                "get": { "summary": "The last health check: healthy / degraded / unhealthy / unconfigured, with its time (`view`)", "tags": ["health"],
                    "responses": responses(&[("200", "The last check (`health` null before the first)", obj())], &["401", "403", "404"]) },
                "post": { "summary": "Run the health check now (timeout 10 s by default) and store the result (`manage`)", "tags": ["health"],
                    "responses": responses(&[("200", "The check", obj())], &["401", "403", "404"]) }
            },
            "/v1/installations/{id}/quota": {
                "parameters": [installation_id.clone()],
                "get": { "summary": "The (tenant, provider) budget the installation draws from: buckets, tokens available, usage of the current window, pause after a provider's 429 (`view`)", "tags": ["quotas"],
                    "responses": responses(&[("200", "The budget (`limited: false` without rate limits)", obj())], &["401", "403", "404"]) }
            },
            "/v1/health": {
                "get": { "summary": "The tenant's installations by health: counts and an overall status over all of them, and a page of the installations (oldest first: creation time, then id) with their last check (`view`)", "tags": ["health"],
                    "parameters": paging(List::Health),
                    "responses": responses(&[("200", "The summary", page_of("installations", obj(), json!({
                        "status": { "enum": ["healthy", "degraded", "unhealthy"] },
                        "counts": { "type": "object", "additionalProperties": { "type": "integer" } } })))], &["400", "401", "403"]) }
            },
            "/oauth/callback": {
                "get": { "summary": "Where the provider sends the user's browser back: exchanges the code and shows what happened (public; the state identifies the request)", "tags": ["oauth"],
                    "security": [],
                    "parameters": [
                        { "name": "state", "in": "query", "required": true, "schema": { "type": "string" } },
                        { "name": "code", "in": "query", "required": false, "schema": { "type": "string" } },
                        { "name": "error", "in": "query", "required": false, "schema": { "type": "string" } }
                    ],
                    "responses": { "200": { "description": "Connected (HTML page)" }, "400": { "description": "Unknown, used or expired state, or refused (HTML page)" }, "502": { "description": "The code exchange failed (HTML page)" } } }
            },
            "/hooks/{hook_id}": {
                "parameters": [path_param("hook_id", "The installation's unguessable hook id (`hk_…`), from its `webhook_url`")],
                "post": { "summary": "Webhook ingress (public; authenticated by the request's signature)", "tags": ["webhooks"],
                    "security": [],
                    "description": "The raw body is verified (by the host from the connector's webhook spec, or by the connector's `verify`), transformed into events by the connector, routed, and written durably in one transaction before the 2xx. A repeat of a webhook id answers what the first request was answered.",
                    "requestBody": { "required": true, "content": { "*/*": { "schema": {} } } },
                    "responses": responses(&[("200", "Recorded (or a repeat: header x-patchbay-duplicate)", json!({ "type": "object", "properties": {
                        "received": { "type": "boolean" }, "id": { "type": "string" },
                        "events": { "type": "array", "items": { "type": "string" } } } }))], &["400", "401", "404", "409", "413", "429", "502", "503"]) }
            },
            "/v1/deliveries/{id}/redrive": {
                "parameters": [path_param("id", "Delivery id (`dlv_…`)")],
                "post": { "summary": "Send a dead delivery again with a fresh retry schedule (`manage`)", "tags": ["events"],
                    "responses": responses(&[("200", "Redriven", obj())], &["401", "403", "404", "409"]) }
            },
            "/v1/deliveries/redrive": {
                "post": { "summary": "Redrive every dead delivery to an installation and/or of a route (`manage`)", "tags": ["events"],
                    "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                        "installation": { "type": ["string", "null"] }, "route": { "type": ["string", "null"] } },
                        "description": "At least one of `installation` and `route` (not null)",
                        "anyOf": [
                            { "required": ["installation"], "properties": { "installation": { "type": "string" } } },
                            { "required": ["route"], "properties": { "route": { "type": "string" } } }
                        ] })),
                    "responses": responses(&[("200", "How many were redriven", json!({ "type": "object", "properties": {
                        "redriven": { "type": "integer" } } }))], &["401", "403", "404", "422"]) }
            },
            "/v1/routes": {
                "post": { "summary": "Create a routing rule (`manage`)", "tags": ["routes"],
                    "description": "Events whose type matches a glob (and the source installation and payload filter, when given) become deliveries to the destination's operation, with arguments rendered from the payload template. See host/src/routing.rs.",
                    "requestBody": json_body(json!({ "$ref": "#/components/schemas/RouteInput" })),
                    "responses": responses(&[("201", "Created", json!({ "$ref": "#/components/schemas/Route" }))], &["400", "401", "403", "409", "422"]) },
                "get": { "summary": "The tenant's routes, oldest first: creation time, then id (`view`)", "tags": ["routes"],
                    "parameters": paging(List::Routes),
                    "responses": responses(&[("200", "A page of routes", page_of("routes", json!({ "$ref": "#/components/schemas/Route" }), Value::Null))], &["400", "401", "403"]) }
            },
            "/v1/routes/{id}": {
                "parameters": [path_param("id", "Route id (`rte_…`)")],
                "get": { "summary": "A route (`view`)", "tags": ["routes"],
                    "responses": responses(&[("200", "Route", json!({ "$ref": "#/components/schemas/Route" }))], &["401", "403", "404"]) },
                "patch": { "summary": "Change a route; absent fields stay, null clears optional ones (`manage`)", "tags": ["routes"],
                    "requestBody": json_body(json!({ "$ref": "#/components/schemas/RoutePatch" })),
                    "responses": responses(&[("200", "Updated", json!({ "$ref": "#/components/schemas/Route" }))], &["400", "401", "403", "404", "409", "422"]) },
                "delete": { "summary": "Delete a route; deliveries already made stay (`manage`)", "tags": ["routes"],
                    "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
            }
    })
}

/// Data sync: runs, schedules, entities, records and mappings.
fn sync_paths(installation_id: &Value) -> Value {
    let run = json!({ "type": "object", "properties": {
        "id": { "type": "string" }, "installation": { "type": "string" }, "entity": { "type": "string" },
        "direction": { "enum": ["import", "export"] }, "mode": { "enum": ["full", "incremental"] },
        "status": { "enum": ["queued", "running", "succeeded", "failed", "cancelled"] },
        "progress": { "type": "object", "properties": {
            "fetched": { "type": "integer" }, "created": { "type": "integer" }, "updated": { "type": "integer" },
            "unchanged": { "type": "integer" }, "deleted": { "type": "integer" }, "failed": { "type": "integer" },
            "total": { "type": ["integer", "null"] }, "percent": { "type": ["number", "null"] },
            "rate_per_sec": { "type": "number" }, "eta_secs": { "type": ["integer", "null"] } } },
        "error": { "type": ["string", "null"] } } });
    let run_id = path_param("id", "Sync run id (`run_…`)");
    let schedule_id = path_param("id", "Schedule id (`sch_…`)");
    let entity = path_param("entity", "Entity name, e.g. `products`");
    let stream = stream_input();
    let mut schedule_input = stream.clone();
    if let Some(p) = schedule_input["properties"].as_object_mut() {
        p.insert(
            "interval_secs".into(),
            nullable(json!({ "type": "integer", "minimum": 1, "maximum": 31_622_400,
            "description": "Seconds between runs, at most 366 days" })),
        );
        p.insert("cron".into(), nullable(json!({ "$ref": "#/components/schemas/Cron" })));
        p.insert("enabled".into(), nullable(json!({ "type": "boolean", "default": true })));
    }
    // Exactly one of the two timings (null counts as left out).
    schedule_input["oneOf"] = json!([
        { "required": ["interval_secs"], "properties": { "interval_secs": { "type": "integer" }, "cron": { "type": "null" } } },
        { "required": ["cron"], "properties": { "cron": { "type": "string" }, "interval_secs": { "type": "null" } } }
    ]);
    let schedule_patch = json!({ "type": "object", "additionalProperties": false,
        "properties": {
            "mode": schedule_input["properties"]["mode"].clone(),
            "interval_secs": schedule_input["properties"]["interval_secs"].clone(),
            "cron": schedule_input["properties"]["cron"].clone(),
            "enabled": { "type": ["boolean", "null"] }
        },
        "description": "Giving `interval_secs` or `cron` (not both) replaces the timing",
        "anyOf": [
            { "properties": { "interval_secs": { "type": "null" } } },
            { "properties": { "cron": { "type": "null" } } }
        ] });
    json!({
        "/v1/syncs": {
            "post": { "summary": "Queue a sync run of an installation's entity (`manage`)", "tags": ["sync"],
                "description": "Imports read the connector's `read-batch` into the records store; exports write another installation's records through `write-batch`. Each batch commits with its cursor in one transaction; a run interrupted by a crash resumes from the last committed batch.",
                "requestBody": json_body(stream),
                "responses": responses(&[("202", "Queued", run.clone())], &["400", "401", "403", "404", "409", "415", "422", "502"]) },
            "get": { "summary": "The tenant's runs, newest first: creation time, then id, both descending (`view`)", "tags": ["sync"],
                "parameters": [
                    query_param("installation", "Only this installation's; at most 128 characters", json!({ "type": "string", "maxLength": 128 })),
                    query_param("entity", "Only this entity's; at most 256 characters", json!({ "type": "string", "maxLength": 256 })),
                    query_param("status", "Only runs in this status", json!({ "enum": ["queued", "running", "succeeded", "failed", "cancelled"] })),
                    cursor_param(List::Runs),
                    query_param("before", "Paging of earlier versions, still served: `next_before` of the previous page, the runs created before that run (404 when the tenant has no such run). With `cursor`, both apply", json!({ "type": "string" })),
                    page_limit_param()
                ],
                "responses": responses(&[("200", "A page of runs", page_of("runs", run.clone(), json!({
                    "next_before": { "type": ["string", "null"], "description": "For `before`: the last run's id; null on the last page" } })))], &["400", "401", "403", "404"]) }
        },
        "/v1/syncs/{id}": {
            "parameters": [run_id.clone()],
            "get": { "summary": "A run with its progress: counters, rate, percent and ETA (`view`)", "tags": ["sync"],
                "responses": responses(&[("200", "Run", run.clone())], &["401", "403", "404"]) }
        },
        "/v1/syncs/{id}/cancel": {
            "parameters": [run_id.clone()],
            "post": { "summary": "Cancel a queued or running run; a running one stops after its current batch (`manage`)", "tags": ["sync"],
                "responses": responses(&[("200", "Run", run.clone())], &["401", "403", "404", "409"]) }
        },
        "/v1/syncs/{id}/resume": {
            "parameters": [run_id.clone()],
            "post": { "summary": "Queue a failed or cancelled run again; it continues from its last committed cursor (`manage`)", "tags": ["sync"],
                "responses": responses(&[("200", "Run", run)], &["401", "403", "404", "409"]) }
        },
        "/v1/syncs/{id}/errors": {
            "parameters": [run_id],
            "get": { "summary": "Item-level errors of a run, in order of their number (`view`)", "tags": ["sync"],
                "parameters": [
                    cursor_param(List::ItemErrors),
                    query_param("after", "Paging of earlier versions, still served: `next_after` of the previous page, the errors numbered above it. With `cursor`, both apply", int64()),
                    page_limit_param()
                ],
                "responses": responses(&[("200", "A page of errors", page_of("errors", obj(), json!({
                    "run": { "type": "string" }, "failed": { "type": "integer" },
                    "next_after": { "type": ["integer", "null"], "description": "For `after`: the last error's number (where to resume as errors are added); null when the page is empty" } })))], &["400", "401", "403", "404"]) }
        },
        "/v1/schedules": {
            "post": { "summary": "Schedule a stream's runs: `interval_secs` or `cron` (`manage`)", "tags": ["sync"],
                "description": "A due schedule queues a run unless the stream already has one queued or running; missed firings do not pile up. With several hosts exactly one fires each schedule.",
                "requestBody": json_body(schedule_input),
                "responses": responses(&[("201", "Created", obj())], &["400", "401", "403", "404", "409", "422", "502"]) },
            "get": { "summary": "The tenant's schedules, oldest first: creation time, then id (`view`)", "tags": ["sync"],
                "parameters": [
                    query_param("installation", "Only this installation's; at most 128 characters", json!({ "type": "string", "maxLength": 128 })),
                    cursor_param(List::Schedules), page_limit_param()
                ],
                "responses": responses(&[("200", "A page of schedules", page_of("schedules", obj(), Value::Null))], &["400", "401", "403"]) }
        },
        "/v1/schedules/{id}": {
            "parameters": [schedule_id],
            "get": { "summary": "A schedule (`view`)", "tags": ["sync"],
                "responses": responses(&[("200", "Schedule", obj())], &["401", "403", "404"]) },
            "patch": { "summary": "Change a schedule's timing, mode or `enabled` (`manage`)", "tags": ["sync"],
                "requestBody": json_body(schedule_patch),
                "responses": responses(&[("200", "Schedule", obj())], &["400", "401", "403", "404", "422"]) },
            "delete": { "summary": "Delete a schedule (`manage`)", "tags": ["sync"],
                "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
        },
        "/v1/installations/{id}/entities": {
            "parameters": [installation_id.clone()],
            "get": { "summary": "The entities a data-sync connector offers; runs the connector (`manage`)", "tags": ["sync"],
                "responses": responses(&[("200", "Entities", obj())], &["401", "403", "404", "409", "422", "502"]) }
        },
        "/v1/installations/{id}/records/{entity}": {
            "parameters": [installation_id.clone(), entity.clone()],
            "get": { "summary": "The records store's change feed: records changed after `since`, in change order (`view`)", "tags": ["sync"],
                "parameters": [
                    cursor_param(List::Changes),
                    query_param("since", "Paging of earlier versions, still served: a change sequence number, `next_since` of the previous page (default 0). With `cursor`, both apply",
                        json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX })),
                    page_limit_param()
                ],
                "responses": responses(&[("200", "A page of changes, in change order", page_of("changes", obj(), json!({
                    "installation": { "type": "string" }, "entity": { "type": "string" },
                    "next_since": { "type": "integer", "description": "The last change's sequence number (or where the page started): where to resume for later changes, with `since`" },
                    "has_more": { "type": "boolean", "description": "Whether another page follows (`next_cursor` is not null)" } })))], &["400", "401", "403", "404"]) }
        },
        "/v1/installations/{id}/records/{entity}/{external_id}": {
            "parameters": [installation_id.clone(), entity.clone(), path_param("external_id", "The source's id of the record")],
            "get": { "summary": "One record by its external id (`view`)", "tags": ["sync"],
                "responses": responses(&[("200", "Record", obj())], &["401", "403", "404"]) }
        },
        "/v1/installations/{id}/mappings/{entity}": {
            "parameters": [installation_id.clone(), entity],
            "get": { "summary": "The field mapping of an entity (`view`)", "tags": ["sync"],
                "responses": responses(&[("200", "Mapping", obj())], &["401", "403", "404"]) },
            "put": { "summary": "Set the field mapping the host applies to the entity's records (`manage`); see docs/sync-mapping.md", "tags": ["sync"],
                "requestBody": json_body(json!({ "$ref": "#/components/schemas/Mapping" })),
                "responses": responses(&[("200", "Mapping", obj())], &["400", "401", "403", "404", "415", "422"]) },
            "delete": { "summary": "Remove the field mapping (`manage`)", "tags": ["sync"],
                "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
        }
    })
}

/// `/v1/retention` and `/v1/tenants/{tenant}/retention` (api/retention.rs): the body states the
/// built-in limits (an operator who raises or lowers them changes what the server accepts).
fn retention_paths() -> Value {
    use patchbay_services::retention::{BUILT_IN, MAX_AGE_SECS, MAX_COUNT};
    let mut input = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    for (class, _, limit) in BUILT_IN {
        let age = limit.max_age_secs.unwrap_or(MAX_AGE_SECS);
        let count = limit.max_count.unwrap_or(MAX_COUNT);
        input.insert(class.as_str().into(), nullable(json!({ "type": "object", "additionalProperties": false,
            "properties": {
                "max_age": nullable(json!({ "type": "string", "pattern": age_pattern(age),
                    "description": format!("Keep rows this long: digits and s, m, h or d, from 1s up to the operator's limit (by default {})", patchbay_services::retention::format_age(age)),
                    "examples": ["7d", "36h"] })),
                "max_count": nullable(json!({ "type": "integer", "minimum": 1, "maximum": count,
                    "description": "Keep this many newest rows (per tenant; per installation for logs), up to the operator's limit" }))
            },
            "description": "null or left out: the operator's default" })));
        limits.insert(class.as_str().into(), json!({ "$ref": "#/components/schemas/RetentionLimits" }));
    }
    let by_class = Value::Object(limits);
    let view = json!({ "type": "object", "required": ["tenant", "policy", "effective", "defaults", "limits"],
        "properties": {
            "tenant": { "type": "string" },
            "policy": { "type": "object", "properties": by_class.clone(), "description": "What the tenant set (null: the default); the PUT body's shape" },
            "effective": { "type": "object", "properties": by_class.clone(), "description": "What the retention sweep applies" },
            "defaults": { "type": "object", "properties": by_class.clone(), "description": "The operator's defaults" },
            "limits": { "type": "object", "properties": by_class, "description": "The most a tenant may set (null: up to 3650d and 1000000000 rows)" }
        } });
    let body = json!({ "type": "object", "additionalProperties": false, "properties": Value::Object(input),
        "description": "Replaces the tenant's overrides; classes left out or null follow the operator's defaults" });
    let describe = "Classes: webhook_requests (raw webhook requests; never inside the webhook dedupe window), events (with their deliveries and attempts; never while a delivery is pending or leased), logs (operation logs; count per installation), sync_errors (item errors of finished runs), sync_changes (tombstones of the records change feed; never while an export still links the record or a run of the stream is active). See docs/retention.md.";
    json!({
        "/v1/retention": {
            "get": { "summary": "The tenant's retention policy (`view`)", "tags": ["retention"], "description": describe,
                "responses": responses(&[("200", "Policy", view.clone())], &["401", "403"]) },
            "put": { "summary": "Set the tenant's retention policy within the operator's limits (`manage`)", "tags": ["retention"],
                "description": describe,
                "requestBody": json_body(body.clone()),
                "responses": responses(&[("200", "Policy", view.clone())], &["401", "403", "422"]) }
        },
        "/v1/tenants/{tenant}/retention": {
            "parameters": [path_param("tenant", "Tenant id")],
            "get": { "summary": "A tenant's retention policy (operator)", "tags": ["retention"], "description": describe,
                "responses": responses(&[("200", "Policy", view.clone())], &["401", "403", "404"]) },
            "put": { "summary": "Set a tenant's retention policy within the operator's limits (operator)", "tags": ["retention"],
                "description": describe,
                "requestBody": json_body(body),
                "responses": responses(&[("200", "Policy", view)], &["401", "403", "404", "422"]) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    documented.push((method.to_string(), path.clone()));
                }
            }
        }
        let mut routes: Vec<(String, String)> =
            crate::endpoints().iter().map(|(m, p, _)| (m.as_str().to_lowercase(), p.to_string())).collect();
        routes.sort();
        documented.sort();
        assert_eq!(routes, documented);
        assert_eq!(doc["openapi"], "3.1.0");
    }

    /// Every operation lists the statuses any request can get, with the error envelope.
    #[test]
    fn every_operation_lists_the_common_error_statuses() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let r = &op["responses"];
                assert!(r.get("503").is_some(), "{method} {path}");
                if op.get("requestBody").is_some() {
                    for code in ["400", "413", "415", "422"] {
                        assert_eq!(r[code]["$ref"], "#/components/responses/Error", "{method} {path} {code}");
                    }
                }
            }
        }
    }

    /// Every `$ref` names a component of the document.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let path = r.strip_prefix("#/").unwrap_or_else(|| panic!("{r} is not local"));
                        let target = path.split('/').fold(doc, |v, key| &v[key]);
                        assert!(target.is_object(), "{r} resolves to nothing");
                    }
                    m.values().for_each(|x| walk(x, doc));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        let doc = document();
        walk(&doc, &doc);
    }

    /// The numeral patterns the integer, time and cron patterns are built from.
    #[test]
    fn retention_ages_are_bounded_exactly() {
        assert_eq!(positive_numeral_at_most(7), "0*(?:[1-6]|7)");
        assert_eq!(positive_numeral_at_most(1), "0*(?:1)");
        assert_eq!(positive_numeral_at_most(90), "0*(?:[1-9]|[1-8][0-9]|90)");
        assert_eq!(positive_numeral_at_most(365), "0*(?:[1-9][0-9]{0,1}|[1-2][0-9]{2}|3[0-5][0-9]|36[0-4]|365)");
        let re = age_pattern(90 * 86_400);
        assert!(re.contains("0*(?:[1-9]|[1-8][0-9]|90)d"), "{re}");
        assert!(re.contains("0*(?:[1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"), "{re}");
    }

    #[test]
    fn numerals_are_bounded_exactly() {
        assert_eq!(numeral_at_most(0), "0*(?:0)");
        assert_eq!(numeral_at_most(7), "0*(?:[0-6]|7)");
        assert_eq!(numeral_at_most(59), "0*(?:[0-9]|[1-4][0-9]|5[0-8]|59)");
        assert_eq!(numeral_at_most(1000), "0*(?:[0-9]{1,3}|1000)");
        assert_eq!(small_range(0, 59), "[0-9]|[1-5][0-9]");
        assert_eq!(small_range(1, 31), "[1-9]|[1-2][0-9]|3[0-1]");
        assert_eq!(small_range(7, 7), "7");
        assert_eq!(small_range(12, 12), "12");
        assert_eq!(small_range(11, 38), "1[1-9]|2[0-9]|3[0-8]");
        assert_eq!(small_range(1, 60), "[1-9]|[1-5][0-9]|60");
    }
}
