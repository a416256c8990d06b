//! Routing rules: which events become deliveries to which installation's operation, with what
//! arguments.
//!
//! A rule ([`Rule`], compiled from a stored [`RouteRow`]) matches an event when
//! - one of its **event type globs** matches the type: `*` stands for any run of characters, dots
//!   included (`expense.*` matches `expense.created` and `expense.report.filed`; `*` matches all);
//! - its **source installation**, if set, is the event's;
//! - its **filter**, if set, holds for the event's payload: an object of dotted paths into the
//!   payload (`"customer.country"`, `"items.0.sku"`) to conditions, all of which must hold. A
//!   condition is a JSON value (equality), or an object with one operator: `eq`, `ne`, `in` /
//!   `nin` (array of values), `gt` / `gte` / `lt` / `lte` (numbers, or strings compared as text),
//!   `exists` (bool), `prefix` (string).
//!
//! A matching rule yields one delivery whose arguments come from its **payload template**: any
//! JSON value in which a string that is exactly `{{path}}` is replaced by the JSON value at that
//! path, and `{{path}}` inside a longer string by its text. Paths start at `event` (`id`, `type`,
//! `subject`, `source`, `payload…`, `payload_json` — the payload as JSON text, for WIT `json`
//! parameters —, `created_at`, `idempotency_key`), `delivery` (`id`,
//! `idempotency_key`) or `route` (`id`, `name`). Without a template the event's payload is the
//! arguments object, except for the `webhooks.deliver` operation, whose default argument is the
//! outbound event built from the event. Rendering happens when the event is stored, so a later
//! edit of a rule does not change deliveries already made.
//!
//! Every delivery carries an idempotency key (`{event id}.{route id}`): the dispatcher writes it
//! into each `idempotency-key` parameter or record field of the operation, so connectors can make
//! effects exactly-once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use patchbay_core::retry::RetrySchedule;
use patchbay_runtime::dynamic::{OperationInfo, Type};
use patchbay_store::{NewDelivery, NewEvent, RouteRow, Store, StoreError};

use crate::config_cache::{ConfigWatch, TenantCache};

/// Most globs a rule may list.
pub(crate) const MAX_GLOBS: usize = 32;
/// Most conditions a filter may hold.
pub(crate) const MAX_CONDITIONS: usize = 32;
/// Largest template, as JSON text.
pub(crate) const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// Most retry delays a rule may list.
pub(crate) const MAX_RETRY_DELAYS: usize = 32;
/// Longest retry delay a rule may ask for (7 days).
pub(crate) const MAX_RETRY_DELAY_SECS: u64 = 7 * 24 * 3600;

/// A rule problem, with the JSON path of the offending part of the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub(crate) struct RuleError {
    pub path: String,
    pub message: String,
}

fn rule_error(path: impl Into<String>, message: impl Into<String>) -> RuleError {
    RuleError { path: path.into(), message: message.into() }
}

/// Checks an event type glob.
pub(crate) fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("must not be empty".into());
    }
    if glob.len() > 200 {
        return Err("must be at most 200 characters".into());
    }
    if let Some(c) = glob.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-:/*".contains(*c))) {
        return Err(format!("{c:?} is not allowed; use letters, digits, `. _ - : /` and `*`"));
    }
    Ok(())
}

/// Whether `text` matches `glob` (`*` = any run of characters).
pub(crate) fn glob_matches(glob: &str, text: &str) -> bool {
    let (g, t) = (glob.as_bytes(), text.as_bytes());
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ti));
            gi += 1;
        } else if gi < g.len() && g[gi] == t[ti] {
            gi += 1;
            ti += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == b'*')
}

/// One filter condition.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    Exists(bool),
    Prefix(String),
}

const OPERATORS: &[&str] = &["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "exists", "prefix"];

fn parse_cond(path: &str, v: &Value) -> Result<Cond, RuleError> {
    let Value::Object(m) = v else { return Ok(Cond::Eq(v.clone())) };
    let mut it = m.iter();
    let (Some((op, arg)), None) = (it.next(), it.next()) else {
        return Err(rule_error(path, format!("an operator object holds exactly one of {}", OPERATORS.join(", "))));
    };
    let at = format!("{path}.{op}");
    let list = |arg: &Value| match arg {
        Value::Array(a) => Ok(a.clone()),
        _ => Err(rule_error(&at, "expects an array of values")),
    };
    let ordered = |arg: &Value| match arg {
        Value::Number(_) | Value::String(_) => Ok(arg.clone()),
        _ => Err(rule_error(&at, "expects a number or a string")),
    };
    Ok(match op.as_str() {
        "eq" => Cond::Eq(arg.clone()),
        "ne" => Cond::Ne(arg.clone()),
        "in" => Cond::In(list(arg)?),
        "nin" => Cond::Nin(list(arg)?),
        "gt" => Cond::Gt(ordered(arg)?),
        "gte" => Cond::Gte(ordered(arg)?),
        "lt" => Cond::Lt(ordered(arg)?),
        "lte" => Cond::Lte(ordered(arg)?),
        "exists" => Cond::Exists(arg.as_bool().ok_or_else(|| rule_error(&at, "expects true or false"))?),
        "prefix" => Cond::Prefix(arg.as_str().ok_or_else(|| rule_error(&at, "expects a string"))?.to_string()),
        other => {
            return Err(rule_error(
                path,
                format!(
                    "unknown operator {other:?}; use one of {} (or a plain value for equality)",
                    OPERATORS.join(", ")
                ),
            ));
        }
    })
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Cond {
    fn holds(&self, v: Option<&Value>) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cond::Exists(want) => v.is_some_and(|v| !v.is_null()) == *want,
            Cond::Eq(x) => v.is_some_and(|v| same(v, x)),
            Cond::Ne(x) => !v.is_some_and(|v| same(v, x)),
            Cond::In(xs) => v.is_some_and(|v| xs.iter().any(|x| same(v, x))),
            Cond::Nin(xs) => !v.is_some_and(|v| xs.iter().any(|x| same(v, x))),
            Cond::Gt(x) => v.and_then(|v| compare(v, x)) == Some(Greater),
            Cond::Gte(x) => matches!(v.and_then(|v| compare(v, x)), Some(Greater | Equal)),
            Cond::Lt(x) => v.and_then(|v| compare(v, x)) == Some(Less),
            Cond::Lte(x) => matches!(v.and_then(|v| compare(v, x)), Some(Less | Equal)),
            Cond::Prefix(p) => v.and_then(Value::as_str).is_some_and(|s| s.starts_with(p.as_str())),
        }
    }
}

/// The value at a dotted path (array elements by index).
pub(crate) fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    path.split('.').try_fold(root, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("{path:?} is not a dotted path (`a.b.0`)"));
    }
    Ok(())
}

/// A parsed payload filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Filter(Vec<(String, Cond)>);

impl Filter {
    /// Parses a filter object (`at` is the request path for errors).
    pub(crate) fn parse(at: &str, v: &Value) -> Result<Filter, RuleError> {
        let Value::Object(m) = v else {
            return Err(rule_error(at, "must be an object of payload paths to conditions"));
        };
        if m.len() > MAX_CONDITIONS {
            return Err(rule_error(at, format!("has {} conditions; at most {MAX_CONDITIONS}", m.len())));
        }
        let mut conds = Vec::with_capacity(m.len());
        for (path, c) in m {
            let here = format!("{at}.{path}");
            check_path(path).map_err(|e| rule_error(&here, e))?;
            conds.push((path.clone(), parse_cond(&here, c)?));
        }
        Ok(Filter(conds))
    }

    pub(crate) fn holds(&self, payload: &Value) -> bool {
        self.0.iter().all(|(path, c)| c.holds(lookup(payload, path)))
    }
}

/// Roots a template placeholder may start from.
const TEMPLATE_ROOTS: &[&str] = &["event", "delivery", "route"];

/// Checks every placeholder of a template.
pub(crate) fn check_template(at: &str, t: &Value) -> Result<(), RuleError> {
    let text = serde_json::to_string(t).unwrap_or_default();
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(rule_error(at, format!("is {} bytes of JSON; at most {MAX_TEMPLATE_BYTES}", text.len())));
    }
    walk_strings(t, at, &mut |s, here| {
        for p in placeholders(s).map_err(|e| rule_error(here, e))? {
            check_path(p).map_err(|e| rule_error(here, e))?;
            let root = p.split('.').next().unwrap_or_default();
            if !TEMPLATE_ROOTS.contains(&root) {
                return Err(rule_error(
                    here,
                    format!("placeholder {{{{{p}}}}} must start with one of {}", TEMPLATE_ROOTS.join(", ")),
                ));
            }
        }
        Ok(())
    })
}

fn walk_strings(v: &Value, at: &str, f: &mut dyn FnMut(&str, &str) -> Result<(), RuleError>) -> Result<(), RuleError> {
    match v {
        Value::String(s) => f(s, at),
        Value::Array(a) => a.iter().enumerate().try_for_each(|(i, x)| walk_strings(x, &format!("{at}[{i}]"), f)),
        Value::Object(m) => m.iter().try_for_each(|(k, x)| walk_strings(x, &format!("{at}.{k}"), f)),
        _ => Ok(()),
    }
}

/// The trimmed paths of the `{{…}}` placeholders in `s`.
fn placeholders(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Renders a template against `ctx` (see the module docs).
pub(crate) fn render(t: &Value, ctx: &Value) -> Value {
    match t {
        Value::String(s) => render_string(s, ctx),
        Value::Array(a) => Value::Array(a.iter().map(|x| render(x, ctx)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), render(x, ctx))).collect()),
        other => other.clone(),
    }
}

fn render_string(s: &str, ctx: &Value) -> Value {
    let trimmed = s.trim();
    if let Some(inner) = trimmed.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
    {
        return lookup(ctx, inner.trim()).cloned().unwrap_or(Value::Null);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Value::String(out);
        };
        match lookup(ctx, after[..end].trim()) {
            Some(Value::String(v)) => out.push_str(v),
            Some(Value::Null) | None => {}
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Value::String(out)
}

/// Checks a retry schedule (delays in seconds).
pub(crate) fn check_retry_schedule(at: &str, delays: &[u64]) -> Result<(), RuleError> {
    if delays.is_empty() || delays.len() > MAX_RETRY_DELAYS {
        return Err(rule_error(at, format!("must list 1 to {MAX_RETRY_DELAYS} delays in seconds")));
    }
    if let Some((i, d)) = delays.iter().enumerate().find(|(_, d)| **d > MAX_RETRY_DELAY_SECS) {
        return Err(rule_error(format!("{at}[{i}]"), format!("{d} s is over the limit of {MAX_RETRY_DELAY_SECS} s")));
    }
    Ok(())
}

/// The retry schedule of a rule's deliveries.
pub(crate) fn retry_schedule(delays: Option<&[u64]>) -> RetrySchedule {
    match delays {
        Some(d) if !d.is_empty() => {
            RetrySchedule { delays: d.iter().map(|s| Duration::from_secs(*s)).collect(), ..RetrySchedule::default() }
        }
        _ => RetrySchedule::default(),
    }
}

/// The operation name under which the webhook-endpoint hub delivers outbound events.
pub(crate) const DELIVER_OPERATION: &str = "deliver";

/// The default arguments of a delivery without a template.
pub(crate) fn default_template(operation: &str) -> Value {
    let op = operation.rsplit(['.', '#', '/']).next().unwrap_or(operation);
    if op == DELIVER_OPERATION {
        json!({"event": {
            "id": "{{event.id}}",
            "event-type": "{{event.type}}",
            "payload": "{{event.payload_json}}",
            "timestamp": "{{event.created_at}}",
            "attempt": 1,
            "idempotency-key": "{{delivery.idempotency_key}}",
        }})
    } else {
        Value::String("{{event.payload}}".into())
    }
}

/// A rule ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub row: RouteRow,
    filter: Option<Filter>,
}

impl Rule {
    /// Compiles a stored rule. Stored rules were validated on the way in; a filter that no longer
    /// parses matches nothing rather than everything.
    pub(crate) fn new(row: RouteRow) -> Rule {
        let filter = row
            .filter
            .as_ref()
            .map(|f| Filter::parse("filter", f).unwrap_or(Filter(vec![(String::new(), Cond::Exists(false))])));
        Rule { row, filter }
    }

    /// Whether the rule takes an event of `event_type` from `source` with `payload`.
    pub(crate) fn matches(&self, event_type: &str, source: &str, payload: &Value) -> bool {
        self.row.enabled
            && self.row.source_installation.as_deref().is_none_or(|s| s == source)
            && self.row.event_types.iter().any(|g| glob_matches(g, event_type))
            && self.filter.as_ref().is_none_or(|f| f.holds(payload))
    }
}

/// Most tenants whose rules are kept in memory.
const RULES_CACHE_MAX: usize = 10_000;

/// The tenants' rules, read from the store and kept until the tenant's data changes on any host
/// (see [`crate::config_cache`]).
pub struct Router {
    store: Store,
    cache: TenantCache<String, Arc<Vec<Rule>>>,
}

impl Router {
    pub(crate) fn new(store: Store, watch: Arc<ConfigWatch>) -> Router {
        Router { store, cache: TenantCache::new(watch, RULES_CACHE_MAX) }
    }

    /// The tenant's enabled rules.
    pub async fn rules(&self, tenant: &str) -> Result<Arc<Vec<Rule>>, StoreError> {
        let key = tenant.to_string();
        if let Some(rules) = self.cache.get(&key) {
            return Ok(rules);
        }
        let read_point = self.cache.read_point();
        let rules: Arc<Vec<Rule>> =
            Arc::new(self.store.routes(tenant, true).await?.into_iter().map(Rule::new).collect());
        self.cache.put(key, tenant, read_point, rules.clone());
        Ok(rules)
    }

    /// Forgets the cached rules of a tenant at once (after a change through this host).
    pub(crate) fn invalidate(&self, tenant: &str) {
        self.cache.changed(tenant);
    }

    /// The retry schedule of a route's deliveries (the default when the route is gone).
    pub(crate) async fn retry_schedule(&self, tenant: &str, route_id: &str) -> RetrySchedule {
        let cached = self.rules(tenant).await.ok().and_then(|rules| {
            rules.iter().find(|r| r.row.id == route_id).map(|r| retry_schedule(r.row.retry_schedule.as_deref()))
        });
        if let Some(s) = cached {
            return s;
        }
        match self.store.route(tenant, route_id).await {
            Ok(Some(r)) => retry_schedule(r.retry_schedule.as_deref()),
            _ => retry_schedule(None),
        }
    }

    /// The deliveries the tenant's rules make of `events` (stored now), for
    /// [`Store::emit_events`].
    pub(crate) async fn route_events(&self, events: &[NewEvent], due_ms: i64) -> Result<Vec<NewDelivery>, StoreError> {
        let mut out = Vec::new();
        for e in events {
            let rules = self.rules(&e.tenant).await?;
            if rules.is_empty() {
                continue;
            }
            let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
            out.extend(deliveries_for(&rules, e, &payload, due_ms));
        }
        Ok(out)
    }
}

/// The idempotency key of an event's delivery by a route.
pub(crate) fn delivery_key(event_id: &str, route_id: &str) -> String {
    format!("{event_id}.{route_id}")
}

/// The deliveries the rules make of one event (whose payload is `payload`, parsed), due at
/// `due_ms`.
pub(crate) fn deliveries_for(rules: &[Rule], event: &NewEvent, payload: &Value, due_ms: i64) -> Vec<NewDelivery> {
    let mut matching = rules.iter().filter(|r| r.matches(&event.event_type, &event.source_installation, payload));
    let Some(first) = matching.next() else { return Vec::new() };
    // The event's part of the template context, built once for all matching rules.
    let mut ctx = json!({
        "event": {
            "id": event.id,
            "type": event.event_type,
            "subject": event.subject,
            "source": event.source_installation,
            "payload": payload,
            "payload_json": event.payload,
            "created_at": event.created_at_ms,
            "idempotency_key": event.idempotency_key,
        },
    });
    let mut out = Vec::new();
    for rule in std::iter::once(first).chain(matching) {
        let r = &rule.row;
        let key = delivery_key(&event.id, &r.id);
        let id = patchbay_core::new_id("dlv");
        if let Value::Object(m) = &mut ctx {
            m.insert("delivery".into(), json!({"id": id, "idempotency_key": key}));
            m.insert("route".into(), json!({"id": r.id, "name": r.name}));
        }
        let args = match &r.payload_template {
            Some(t) => render(t, &ctx),
            None => render(&default_template(&r.operation), &ctx),
        };
        out.push(NewDelivery {
            id,
            event_id: event.id.clone(),
            tenant: event.tenant.clone(),
            route_id: Some(r.id.clone()),
            destination_installation: r.destination_installation.clone(),
            operation: r.operation.clone(),
            payload: args.to_string(),
            idempotency_key: key,
            next_attempt_at_ms: due_ms,
            lease: None,
        });
    }
    out
}

/// The WIT name of idempotency keys in operation signatures.
pub(crate) const IDEMPOTENCY_FIELD: &str = "idempotency-key";

/// Writes the delivery's idempotency key into the arguments of `op`: every string parameter
/// named `idempotency-key`, and the `idempotency-key` field of every record parameter that has
/// one (added when the template left it out); and the attempt number into the `attempt` field of
/// the webhooks hub's outbound event. Without the signature (`op` unknown) only keys already
/// present are overwritten.
pub(crate) fn stamp_delivery(args: &mut Value, key: &str, attempt: u32, op: Option<&OperationInfo>) {
    let Value::Object(m) = args else { return };
    let Some(op) = op else {
        stamp(m, key);
        for v in m.values_mut() {
            if let Value::Object(inner) = v {
                stamp(inner, key);
            }
        }
        return;
    };
    for (name, ty) in &op.params {
        match ty {
            Type::String if name == IDEMPOTENCY_FIELD => {
                m.insert(name.clone(), Value::String(key.to_string()));
            }
            Type::Record(r) => {
                let fields: Vec<&str> = r.fields().map(|f| f.name).collect();
                if !fields.contains(&IDEMPOTENCY_FIELD) {
                    continue;
                }
                let Some(Value::Object(inner)) = m.get_mut(name.as_str()) else { continue };
                inner.insert(IDEMPOTENCY_FIELD.into(), Value::String(key.to_string()));
                if op.name == DELIVER_OPERATION && fields.contains(&"attempt") {
                    inner.insert("attempt".into(), Value::from(attempt));
                }
            }
            _ => {}
        }
    }
}

fn stamp(m: &mut Map<String, Value>, key: &str) {
    if let Some(v) = m.get_mut(IDEMPOTENCY_FIELD) {
        *v = Value::String(key.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("expense.*", "expense.created"));
        assert!(glob_matches("expense.*", "expense.report.filed"));
        assert!(!glob_matches("expense.*", "expenses.created"));
        assert!(!glob_matches("expense.*", "expense"));
        assert!(glob_matches("*", "anything.at.all"));
        assert!(glob_matches("*.created", "invoice.created"));
        assert!(!glob_matches("*.created", "invoice.created.late"));
        assert!(glob_matches("a*b*c", "a-x-b-y-c"));
        assert!(glob_matches("github.push", "github.push"));
        assert!(!glob_matches("github.push", "github.pushed"));
        assert!(check_glob("expense.*").is_ok());
        assert!(check_glob("").is_err());
        assert!(check_glob("a b").is_err());
    }

    #[test]
    fn filters() {
        let f = Filter::parse(
            "filter",
            &json!({"amount": {"gte": 100}, "currency": "usd", "customer.country": {"in": ["DE", "FR"]},
                    "note": {"exists": false}, "sku": {"prefix": "A-"}}),
        )
        .unwrap();
        let ok = json!({"amount": 150, "currency": "usd", "customer": {"country": "FR"}, "sku": "A-1"});
        assert!(f.holds(&ok));
        let mut low = ok.clone();
        low["amount"] = json!(99.5);
        assert!(!f.holds(&low));
        let mut noted = ok.clone();
        noted["note"] = json!("x");
        assert!(!f.holds(&noted));
        let mut other = ok.clone();
        other["customer"]["country"] = json!("US");
        assert!(!f.holds(&other));
        assert!(Filter::parse("filter", &json!({"a": {"gte": 1, "lt": 2}})).is_err());
        let e = Filter::parse("filter", &json!({"a": {"between": [1, 2]}})).unwrap_err();
        assert_eq!(e.path, "filter.a");
        assert!(Filter::parse("filter", &json!({"a..b": 1})).is_err());
        assert!(Filter::parse("filter", &json!([1])).is_err());
        let f = Filter::parse("filter", &json!({"items.1.n": 2.0})).unwrap();
        assert!(f.holds(&json!({"items": [{"n": 1}, {"n": 2}]})));
    }

    #[test]
    fn templates() {
        let ctx = json!({"event": {"id": "evt_1", "type": "a.b", "payload": {"n": 5, "s": "x"}}});
        let t = json!({"whole": "{{event.payload}}", "n": "{{ event.payload.n }}", "text": "id={{event.id}} n={{event.payload.n}}",
                       "missing": "{{event.nope}}", "lit": 3, "list": ["{{event.type}}"]});
        assert_eq!(
            render(&t, &ctx),
            json!({"whole": {"n": 5, "s": "x"}, "n": 5, "text": "id=evt_1 n=5", "missing": null, "lit": 3, "list": ["a.b"]})
        );
        assert!(check_template("t", &t).is_ok());
        let e = check_template("t", &json!({"a": ["{{secrets.x}}"]})).unwrap_err();
        assert_eq!(e.path, "t.a[0]");
        assert!(check_template("t", &json!("{{event.id")).is_err());
    }

    #[test]
    fn stamping_without_a_signature_overwrites_present_keys() {
        let mut args = json!({"notification": {"to": [], "idempotency-key": "template"}, "idempotency-key": "x"});
        stamp_delivery(&mut args, "evt.rt", 3, None);
        assert_eq!(args["notification"]["idempotency-key"], "evt.rt");
        assert_eq!(args["idempotency-key"], "evt.rt");
        let ev = render(
            &default_template("deliver"),
            &json!({"event": {"id": "e", "type": "t", "payload": {"a": 1}, "payload_json": "{\"a\":1}", "created_at": 5},
                    "delivery": {"idempotency_key": "k"}}),
        );
        assert_eq!(ev["event"]["payload"], "{\"a\":1}");
        assert_eq!(ev["event"]["idempotency-key"], "k");
        assert_eq!(ev["event"]["timestamp"], 5);
    }
}
