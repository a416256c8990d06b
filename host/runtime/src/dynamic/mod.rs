//! Calling a connector's operations with JSON.
//!
//! [`operations`] lists a connector's operations — the functions of the `lifecycle` interface and
//! of its hub interface, nothing else — with their WIT parameter and result types;
//! [`exported_functions`] lists every function the component exports (a toolchain may export
//! more: componentize-py's `init`, a test guest's own interface). [`json_to_val`] and [`val_to_json`] convert
//! between JSON and wasmtime's dynamic [`Val`] guided by those types, [`operation_schema`] derives a
//! JSON Schema (2020-12) for an operation's input and output, and [`invoke`] resolves an operation
//! by name, converts its input, and runs it through `Runtime::call`, so every limit, log and
//! report of a typed call applies ([`invoke_raw`] does the same and returns the whole result's
//! JSON, as `patchbay run` prints it). Only operations can be invoked; [`invoke_export`] reaches
//! any exported function and exists for tests of the mapping itself (the host's API and command
//! line never call it, which `tests/all/layers.rs` checks).
//!
//! # The JSON mapping
//!
//! The same rules are written down for users in `docs/json-mapping.md`.
//!
//! | WIT | JSON output | JSON input |
//! |---|---|---|
//! | `bool` | `true` / `false` | the same |
//! | `u8` … `u64`, `s8` … `s64` | a number | a number in range; `1.0`/`1e3` only when whole and below 2^53 |
//! | `f32`, `f64` | a number; NaN and ±infinity as `null` | a finite number (`f32`: within its range) |
//! | `char` | a one-character string | a string of exactly one Unicode scalar value |
//! | `string` | a string | a string |
//! | `list<u8>` | a base64 string (standard alphabet, padded) | a base64 string (padding optional, URL-safe alphabet accepted) or an array of numbers 0–255 |
//! | other `list<T>`, `list<T, N>` | an array | an array (of exactly N elements for `list<T, N>`) |
//! | `map<string, V>` | an object | an object, or an array of `[key, value]` pairs |
//! | other `map<K, V>` | an array of `[key, value]` pairs | the same |
//! | `record` | an object keyed by the WIT field names (kebab-case) | the same; each name may also be spelled in snake_case; unknown fields are rejected; a missing `option` field is `none`, any other missing field is an error |
//! | `tuple<…>` | an array | an array of exactly that length |
//! | `variant` | `"case"` for a case without payload, `{"case": payload}` otherwise | the same; also `{"case": null}` for a case without payload, and `"case"` for a case whose payload is an `option` (meaning `none`) |
//! | `enum` | the case name as a string | the same |
//! | `option<T>` | `null` for `none`, else T's JSON | the same |
//! | `result<T, E>` | `{"ok": T}` or `{"err": E}`; an arm without payload holds `null` | the same |
//! | `flags` | an array of the set flags' names | an array of flag names |
//! | `own`/`borrow` resources, `future`, `stream`, `error-context` | not supported | rejected with an error naming the type |
//!
//! Wherever a WIT name is expected on input (record fields, parameter names, variant cases, enum
//! cases, flags), its snake_case spelling (`idempotency_key` for `idempotency-key`) is accepted
//! too; output always uses the WIT spelling.
//!
//! `option<option<T>>` cannot tell `some(none)` from `none`: both are `null` on output, and `null`
//! reads as `none`. No patchbay interface uses such a type.
//!
//! A function's input is a JSON object keyed by parameter name (kebab-case or snake_case);
//! unknown keys are rejected, a missing `option` parameter is `none`. A function without
//! parameters also accepts `null`. Its output is the JSON of its result (`null` when it has none).
//!
//! Functions whose names start with `[` (resource constructors, methods and static functions) are
//! not listed: their receivers are resources, which have no JSON form.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Number, Value, json};
use wasmtime::Engine;
use wasmtime::component::types::{Case, ComponentFunc, ComponentItem, Field};
use wasmtime::component::{Component, ComponentExportIndex};

use super::{CallReport, Installation, LoadedComponent, Runtime};

mod canon;

/// The WIT type and value representations this module maps, re-exported for callers that do not
/// depend on wasmtime themselves.
pub use wasmtime::component::{Type, Val};

/// One exported function: what [`invoke`] can call.
#[derive(Debug, Clone)]
pub struct OperationInfo {
    /// The WIT function name, e.g. `send` or `health-check`.
    pub name: String,
    /// The exported interface, e.g. `patchbay:connector/notifications@0.1.0`; empty for a
    /// function the component exports directly.
    pub interface: String,
    /// Parameter names (kebab-case, as in WIT) and types, in order.
    pub params: Vec<(String, Type)>,
    /// The result type; `None` for a function without result.
    pub result: Option<Type>,
}

impl OperationInfo {
    /// The interface's short name: `notifications` for `patchbay:connector/notifications@0.1.0`.
    pub fn interface_name(&self) -> &str {
        short_interface_name(&self.interface)
    }

    /// `interface.function` (e.g. `notifications.send`): a name no other operation shares.
    pub fn qualified_name(&self) -> String {
        if self.interface.is_empty() { self.name.clone() } else { format!("{}.{}", self.interface_name(), self.name) }
    }

    /// Why this operation cannot be called with JSON, if it cannot: the first parameter or result
    /// whose type contains a resource, future, stream or error-context.
    pub fn unsupported(&self) -> Option<String> {
        for (name, ty) in &self.params {
            if let Some(kind) = unsupported_kind(ty) {
                return Some(format!("parameter `{name}` contains a {kind}, which has no JSON form"));
            }
        }
        let kind = unsupported_kind(self.result.as_ref()?)?;
        Some(format!("the result contains a {kind}, which has no JSON form"))
    }
}

/// `notifications` for `patchbay:connector/notifications@0.1.0`; the name itself when it has no
/// package or version.
fn short_interface_name(interface: &str) -> &str {
    let name = interface.rsplit_once('/').map_or(interface, |(_, n)| n);
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// A connector's operations: the functions of its `lifecycle` export and of its hub interface's
/// export (`patchbay:connector/<interface>@<version>`), in export order. Anything else a
/// component exports is neither listed nor callable.
pub fn operations(engine: &Engine, component: &Component) -> Vec<OperationInfo> {
    exported_functions(engine, component).into_iter().filter(is_operation).collect()
}

/// Whether an exported function is an operation: it belongs to the `lifecycle` interface or to a
/// hub interface of this host's package and version.
pub fn is_operation(op: &OperationInfo) -> bool {
    op.interface == crate::hub::lifecycle_export() || crate::Hub::ALL.iter().any(|h| op.interface == h.export_name())
}

/// Every function of every interface `component` exports (and any function it exports directly),
/// in export order, operations or not.
pub fn exported_functions(engine: &Engine, component: &Component) -> Vec<OperationInfo> {
    let ty = component.component_type();
    let mut ops = Vec::new();
    for (export, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                for (name, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(func) = item.ty
                        && !name.starts_with('[')
                    {
                        ops.push(operation_info(export, name, &func));
                    }
                }
            }
            ComponentItem::ComponentFunc(func) if !export.starts_with('[') => {
                ops.push(operation_info("", export, &func));
            }
            _ => {}
        }
    }
    ops
}

fn operation_info(interface: &str, name: &str, func: &ComponentFunc) -> OperationInfo {
    OperationInfo {
        name: name.to_string(),
        interface: interface.to_string(),
        params: func.params().map(|(n, t)| (n.to_string(), t)).collect(),
        // The component model allows at most one result.
        result: func.results().next(),
    }
}

/// Finds an operation by name.
///
/// `name` is the function name (`send`, `health-check`; snake_case accepted). When several
/// interfaces export a function of that name, it must be qualified with the interface's short
/// name (`notifications.send`); the full interface name also works (`patchbay:connector/
/// notifications@0.1.0#send`).
pub fn find_operation<'a>(ops: &'a [OperationInfo], name: &str) -> Result<&'a OperationInfo, InvokeError> {
    let (interface, func) = match name.split_once('#').or_else(|| name.split_once('.')) {
        Some((i, f)) => (Some(i), f),
        None => (None, name),
    };
    let func = func.replace('_', "-");
    let matches: Vec<&OperationInfo> = ops
        .iter()
        .filter(|op| {
            op.name == func
                && interface.is_none_or(|i| {
                    i == op.interface || (!op.interface.is_empty() && i.replace('_', "-") == op.interface_name())
                })
        })
        .collect();
    match matches.as_slice() {
        [op] => Ok(op),
        [] => Err(InvokeError::UnknownOperation { name: name.to_string(), available: callable_names(ops) }),
        many => Err(InvokeError::AmbiguousOperation {
            name: name.to_string(),
            candidates: many.iter().map(|op| op.qualified_name()).collect(),
        }),
    }
}

/// The shortest unambiguous name of each operation: the bare function name, or
/// `interface.function` when another interface exports the same name.
pub(crate) fn callable_names(ops: &[OperationInfo]) -> Vec<String> {
    ops.iter()
        .map(
            |op| {
                if ops.iter().filter(|o| o.name == op.name).count() > 1 { op.qualified_name() } else { op.name.clone() }
            },
        )
        .collect()
}

/// Why an operation could not be started. Errors while it runs are [`super::CallError`]s in the
/// call's report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No exported function has that name.
    #[error("unknown operation {name:?}; {}", list_available(available))]
    UnknownOperation {
        /// The name asked for.
        name: String,
        /// The shortest unambiguous name of every operation the component exports.
        available: Vec<String>,
    },
    /// Several interfaces export a function of that name.
    #[error("operation {name:?} is exported by several interfaces; call it as {}", candidates.join(" or "))]
    AmbiguousOperation {
        /// The name asked for.
        name: String,
        /// The qualified names (`interface.function`) that would match.
        candidates: Vec<String>,
    },
    /// The JSON input does not fit the operation's parameters.
    #[error("invalid input: {0}")]
    BadInput(MappingError),
    /// The operation's types have no JSON form.
    #[error("operation {operation} cannot be called with JSON: {reason}")]
    Unsupported {
        /// The operation's qualified name.
        operation: String,
        /// Which parameter or result has no JSON form.
        reason: String,
    },
}

fn list_available(available: &[String]) -> String {
    if available.is_empty() {
        "the component exports no operations".to_string()
    } else {
        format!("available: {}", available.join(", "))
    }
}

impl InvokeError {
    /// A short machine-readable kind.
    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::UnknownOperation { .. } => "unknown_operation",
            InvokeError::AmbiguousOperation { .. } => "ambiguous_operation",
            InvokeError::BadInput(_) => "bad_input",
            InvokeError::Unsupported { .. } => "unsupported_operation",
        }
    }
}

/// A JSON value that does not fit a WIT type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// Where in the input: `notification.to[0].address`; empty for the value itself.
    pub path: String,
    /// What is wrong with the value there.
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

impl std::error::Error for MappingError {}

/// A position in the input, as a linked list from the leaf to the root (rendered only on error).
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path { parent: None, seg: Seg::Root };

    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Key(key) }
    }

    fn index(&'a self, index: usize) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Index(index) }
    }

    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            segs.push(p.seg);
            at = p.parent;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k)
                    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Key(k) => out.push_str(&format!("[{}]", Value::String(k.to_string()))),
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn err(&self, message: impl Into<String>) -> MappingError {
        MappingError { path: self.render(), message: message.into() }
    }

    fn expected(&self, what: &str, got: &Value) -> MappingError {
        self.err(format!("expected {what}, got {}", json_kind(got)))
    }
}

/// `the number 5`, `a string`, ... for error messages.
fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// A short description of a WIT type for messages: `u32`, `list<string>`, `record { to, cc }`.
pub(crate) fn describe(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", describe(&l.ty())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", describe(&l.ty()), l.len()),
        Type::Map(m) => format!("map<{}, {}>", describe(&m.key()), describe(&m.value())),
        Type::Record(r) => format!("record {{ {} }}", r.fields().map(|f| f.name).collect::<Vec<_>>().join(", ")),
        Type::Tuple(t) => format!("tuple<{}>", t.types().map(|t| describe(&t)).collect::<Vec<_>>().join(", ")),
        Type::Variant(v) => format!("variant {{ {} }}", v.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", describe(&o.ty())),
        Type::Result(r) => {
            let arm = |t: Option<Type>| t.map_or("_".to_string(), |t| describe(&t));
            format!("result<{}, {}>", arm(r.ok()), arm(r.err()))
        }
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

/// The first kind inside `ty` that has no JSON form, if any.
fn unsupported_kind(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Own(_) | Type::Borrow(_) => Some("resource"),
        Type::Future(_) => Some("future"),
        Type::Stream(_) => Some("stream"),
        Type::ErrorContext => Some("error-context"),
        Type::List(l) => unsupported_kind(&l.ty()),
        Type::FixedLengthList(l) => unsupported_kind(&l.ty()),
        Type::Map(m) => unsupported_kind(&m.key()).or_else(|| unsupported_kind(&m.value())),
        Type::Record(r) => r.fields().find_map(|f| unsupported_kind(&f.ty)),
        Type::Tuple(t) => t.types().find_map(|t| unsupported_kind(&t)),
        Type::Variant(v) => v.cases().find_map(|c| c.ty.as_ref().and_then(unsupported_kind)),
        Type::Option(o) => unsupported_kind(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().and_then(unsupported_kind).or_else(|| r.err().as_ref().and_then(unsupported_kind))
        }
        _ => None,
    }
}

/// Converts JSON to a value of type `ty` (see the module docs for the mapping).
pub fn json_to_val(ty: &Type, v: &Value) -> Result<Val, MappingError> {
    to_arg(ty, v, &Path::ROOT).map(Arg::into_val)
}

/// Converts an operation's input object to its argument list.
pub fn params_from_json(op: &OperationInfo, input: &Value) -> Result<Vec<Val>, MappingError> {
    Ok(params_args(op, input)?.into_iter().map(Arg::into_val).collect())
}

/// A value converted from JSON, ready to be passed to a guest: like [`Val`], except that a
/// `list<u8>` is one byte buffer rather than a `Val` per byte.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Bool(bool),
    S8(i8),
    U8(u8),
    S16(i16),
    U16(u16),
    S32(i32),
    U32(u32),
    S64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Char(char),
    String(String),
    Bytes(Vec<u8>),
    List(Vec<Arg>),
    FixedList(Vec<Arg>),
    Map(Vec<(Arg, Arg)>),
    Record(Vec<(String, Arg)>),
    Tuple(Vec<Arg>),
    Variant(String, Option<Box<Arg>>),
    Enum(String),
    Option(Option<Box<Arg>>),
    Result(Result<Option<Box<Arg>>, Option<Box<Arg>>>),
    Flags(Vec<String>),
}

impl Arg {
    /// The same value as wasmtime's [`Val`].
    pub(crate) fn into_val(self) -> Val {
        let boxed = |x: Option<Box<Arg>>| x.map(|x| Box::new(x.into_val()));
        let all = |xs: Vec<Arg>| xs.into_iter().map(Arg::into_val).collect();
        match self {
            Arg::Bool(b) => Val::Bool(b),
            Arg::S8(n) => Val::S8(n),
            Arg::U8(n) => Val::U8(n),
            Arg::S16(n) => Val::S16(n),
            Arg::U16(n) => Val::U16(n),
            Arg::S32(n) => Val::S32(n),
            Arg::U32(n) => Val::U32(n),
            Arg::S64(n) => Val::S64(n),
            Arg::U64(n) => Val::U64(n),
            Arg::F32(f) => Val::Float32(f),
            Arg::F64(f) => Val::Float64(f),
            Arg::Char(c) => Val::Char(c),
            Arg::String(s) => Val::String(s),
            Arg::Bytes(b) => Val::List(b.into_iter().map(Val::U8).collect()),
            Arg::List(xs) => Val::List(all(xs)),
            Arg::FixedList(xs) => Val::FixedLengthList(all(xs)),
            Arg::Map(pairs) => Val::Map(pairs.into_iter().map(|(k, v)| (k.into_val(), v.into_val())).collect()),
            Arg::Record(fields) => Val::Record(fields.into_iter().map(|(k, v)| (k, v.into_val())).collect()),
            Arg::Tuple(xs) => Val::Tuple(all(xs)),
            Arg::Variant(case, x) => Val::Variant(case, boxed(x)),
            Arg::Enum(case) => Val::Enum(case),
            Arg::Option(x) => Val::Option(boxed(x)),
            Arg::Result(Ok(x)) => Val::Result(Ok(boxed(x))),
            Arg::Result(Err(x)) => Val::Result(Err(boxed(x))),
            Arg::Flags(names) => Val::Flags(names),
        }
    }

    /// What kind of value this is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Arg::Bool(_) => "bool",
            Arg::S8(_)
            | Arg::U8(_)
            | Arg::S16(_)
            | Arg::U16(_)
            | Arg::S32(_)
            | Arg::U32(_)
            | Arg::S64(_)
            | Arg::U64(_) => "integer",
            Arg::F32(_) | Arg::F64(_) => "float",
            Arg::Char(_) => "char",
            Arg::String(_) => "string",
            Arg::Bytes(_) => "list<u8>",
            Arg::List(_) => "list",
            Arg::FixedList(_) => "fixed-length list",
            Arg::Map(_) => "map",
            Arg::Record(_) => "record",
            Arg::Tuple(_) => "tuple",
            Arg::Variant(..) => "variant",
            Arg::Enum(_) => "enum",
            Arg::Option(_) => "option",
            Arg::Result(_) => "result",
            Arg::Flags(_) => "flags",
        }
    }
}

/// Converts an operation's input object to its arguments.
fn params_args(op: &OperationInfo, input: &Value) -> Result<Vec<Arg>, MappingError> {
    let names = || op.params.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    let obj = match input {
        Value::Null if op.params.is_empty() => return Ok(Vec::new()),
        Value::Object(obj) => obj,
        other if op.params.is_empty() => {
            return Err(Path::ROOT.expected("an empty object or null (the operation takes no parameters)", other));
        }
        other => {
            return Err(Path::ROOT.expected(&format!("an object with the parameters ({})", names()), other));
        }
    };
    let fields: Vec<(&str, &Type)> = op.params.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let values = named_values(&fields, obj, &Path::ROOT, "parameter")?;
    Ok(values.into_iter().map(|(_, v)| v).collect())
}

/// Whether `key` spells the WIT name `wit` (as is, or in snake_case).
fn spells(wit: &str, key: &str) -> bool {
    key == wit || (key.len() == wit.len() && key.replace('_', "-") == wit)
}

/// Reads the named members of a record or parameter list from a JSON object.
fn named_values(
    fields: &[(&str, &Type)],
    obj: &Map<String, Value>,
    p: &Path<'_>,
    what: &str,
) -> Result<Vec<(String, Arg)>, MappingError> {
    for key in obj.keys() {
        if !fields.iter().any(|(name, _)| spells(name, key)) {
            let expected = if fields.is_empty() {
                format!("there are no {what}s")
            } else {
                format!("expected {}", fields.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
            };
            return Err(p.err(format!("unknown {what} {key:?}; {expected}")));
        }
    }
    let mut out = Vec::with_capacity(fields.len());
    for (name, ty) in fields {
        let snake = name.replace('-', "_");
        let given = match (obj.get(*name), if snake != *name { obj.get(&snake) } else { None }) {
            (Some(_), Some(_)) => {
                return Err(p.err(format!("{what} {name:?} is given twice (as {name} and {snake})")));
            }
            (Some(v), None) | (None, Some(v)) => Some(v),
            (None, None) => None,
        };
        let val = match given {
            Some(v) => to_arg(ty, v, &p.key(name))?,
            None if matches!(ty, Type::Option(_)) => Arg::Option(None),
            None => return Err(p.err(format!("missing {what} {name:?} ({})", describe(ty)))),
        };
        out.push((name.to_string(), val));
    }
    Ok(out)
}

fn to_arg(ty: &Type, v: &Value, p: &Path<'_>) -> Result<Arg, MappingError> {
    Ok(match ty {
        Type::Bool => Arg::Bool(v.as_bool().ok_or_else(|| p.expected("a boolean", v))?),
        Type::S8 => Arg::S8(int(v, p, "s8")?),
        Type::U8 => Arg::U8(int(v, p, "u8")?),
        Type::S16 => Arg::S16(int(v, p, "s16")?),
        Type::U16 => Arg::U16(int(v, p, "u16")?),
        Type::S32 => Arg::S32(int(v, p, "s32")?),
        Type::U32 => Arg::U32(int(v, p, "u32")?),
        Type::S64 => Arg::S64(int(v, p, "s64")?),
        Type::U64 => Arg::U64(int(v, p, "u64")?),
        Type::Float64 => Arg::F64(float(v, p, "f64")?),
        Type::Float32 => {
            let f = float(v, p, "f32")?;
            if f.abs() > f64::from(f32::MAX) {
                return Err(p.err(format!("{v} is out of range for f32")));
            }
            Arg::F32(f as f32)
        }
        Type::Char => {
            let s = v.as_str().ok_or_else(|| p.expected("a one-character string (char)", v))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Arg::Char(c),
                _ => {
                    return Err(
                        p.err(format!("expected exactly one character (char), got {} characters", s.chars().count()))
                    );
                }
            }
        }
        Type::String => Arg::String(v.as_str().ok_or_else(|| p.expected("a string", v))?.to_string()),
        Type::List(l) => {
            let elem = l.ty();
            if matches!(elem, Type::U8) {
                return bytes(v, p);
            }
            let items = v.as_array().ok_or_else(|| p.expected(&format!("an array ({})", describe(ty)), v))?;
            Arg::List(items.iter().enumerate().map(|(i, x)| to_arg(&elem, x, &p.index(i))).collect::<Result<_, _>>()?)
        }
        Type::FixedLengthList(l) => {
            let items = v.as_array().ok_or_else(|| p.expected(&format!("an array ({})", describe(ty)), v))?;
            if items.len() != l.len() as usize {
                return Err(p.err(format!("expected an array of exactly {} elements, got {}", l.len(), items.len())));
            }
            let elem = l.ty();
            Arg::FixedList(
                items.iter().enumerate().map(|(i, x)| to_arg(&elem, x, &p.index(i))).collect::<Result<_, _>>()?,
            )
        }
        Type::Map(m) => {
            let (key_ty, value_ty) = (m.key(), m.value());
            match v {
                Value::Object(obj) if matches!(key_ty, Type::String) => Arg::Map(
                    obj.iter()
                        .map(|(k, x)| -> Result<(Arg, Arg), MappingError> {
                            Ok((Arg::String(k.clone()), to_arg(&value_ty, x, &p.key(k))?))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Value::Array(pairs) => Arg::Map(
                    pairs
                        .iter()
                        .enumerate()
                        .map(|(i, pair)| -> Result<(Arg, Arg), MappingError> {
                            let at = p.index(i);
                            match pair.as_array().map(Vec::as_slice) {
                                Some([k, x]) => {
                                    Ok((to_arg(&key_ty, k, &at.index(0))?, to_arg(&value_ty, x, &at.index(1))?))
                                }
                                _ => Err(at.expected("a [key, value] pair", pair)),
                            }
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other if matches!(key_ty, Type::String) => {
                    return Err(p.expected("an object or an array of [key, value] pairs", other));
                }
                other => return Err(p.expected("an array of [key, value] pairs", other)),
            }
        }
        Type::Record(r) => {
            let obj = v.as_object().ok_or_else(|| p.expected("an object (record)", v))?;
            let fields: Vec<Field<'_>> = r.fields().collect();
            let fields: Vec<(&str, &Type)> = fields.iter().map(|f| (f.name, &f.ty)).collect();
            Arg::Record(named_values(&fields, obj, p, "field")?)
        }
        Type::Tuple(t) => {
            let items = v.as_array().ok_or_else(|| p.expected(&format!("an array ({})", describe(ty)), v))?;
            if items.len() != t.types().len() {
                return Err(p.err(format!(
                    "expected an array of exactly {} elements ({}), got {}",
                    t.types().len(),
                    describe(ty),
                    items.len()
                )));
            }
            Arg::Tuple(
                t.types()
                    .zip(items)
                    .enumerate()
                    .map(|(i, (t, x))| to_arg(&t, x, &p.index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(var) => variant(var.cases().collect(), v, p)?,
        Type::Enum(e) => {
            let s = v.as_str().ok_or_else(|| p.expected("a string (enum)", v))?;
            match e.names().find(|n| spells(n, s)) {
                Some(n) => Arg::Enum(n.to_string()),
                None => {
                    return Err(p.err(format!(
                        "unknown case {s:?}; expected one of {}",
                        e.names().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
        Type::Option(o) => match v {
            Value::Null => Arg::Option(None),
            v => Arg::Option(Some(Box::new(to_arg(&o.ty(), v, p)?))),
        },
        Type::Result(r) => {
            let single = v.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next());
            let (arm, payload) = match single {
                Some((k, x)) if k == "ok" || k == "err" => (k.as_str(), x),
                _ => return Err(p.expected("{\"ok\": …} or {\"err\": …} (result)", v)),
            };
            let ty = if arm == "ok" { r.ok() } else { r.err() };
            let at = p.key(arm);
            let val = match ty {
                Some(t) => Some(Box::new(to_arg(&t, payload, &at)?)),
                None if payload.is_null() => None,
                None => return Err(at.expected("null (this arm has no payload)", payload)),
            };
            Arg::Result(if arm == "ok" { Ok(val) } else { Err(val) })
        }
        Type::Flags(f) => {
            let items = v.as_array().ok_or_else(|| p.expected("an array of flag names", v))?;
            let mut set: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().ok_or_else(|| p.index(i).expected("a flag name", item))?;
                let Some(name) = f.names().find(|n| spells(n, s)) else {
                    return Err(p.index(i).err(format!(
                        "unknown flag {s:?}; expected any of {}",
                        f.names().collect::<Vec<_>>().join(", ")
                    )));
                };
                if !set.iter().any(|n| n == name) {
                    set.push(name.to_string());
                }
            }
            Arg::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(p.err(format!("values of type {} cannot be given as JSON", describe(ty))));
        }
    })
}

fn variant(cases: Vec<Case<'_>>, v: &Value, p: &Path<'_>) -> Result<Arg, MappingError> {
    let names = || {
        cases
            .iter()
            .map(|c| if c.ty.is_some() { format!("{}(…)", c.name) } else { c.name.to_string() })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let find = |s: &str| {
        cases
            .iter()
            .find(|c| spells(c.name, s))
            .ok_or_else(|| p.err(format!("unknown case {s:?}; expected one of {}", names())))
    };
    match v {
        Value::String(s) => {
            let case = find(s)?;
            match &case.ty {
                None => Ok(Arg::Variant(case.name.to_string(), None)),
                Some(Type::Option(_)) => Ok(Arg::Variant(case.name.to_string(), Some(Box::new(Arg::Option(None))))),
                Some(t) => Err(p.err(format!(
                    "case {:?} needs a payload ({}); write {{\"{}\": …}}",
                    case.name,
                    describe(t),
                    case.name
                ))),
            }
        }
        Value::Object(obj) => {
            let mut entries = obj.iter();
            let (Some((k, payload)), None) = (entries.next(), entries.next()) else {
                return Err(p.err(format!(
                    "expected an object with exactly one key (the case), got {} keys; cases: {}",
                    obj.len(),
                    names()
                )));
            };
            let case = find(k)?;
            let at = p.key(case.name);
            match &case.ty {
                None if payload.is_null() => Ok(Arg::Variant(case.name.to_string(), None)),
                None => Err(at.expected("null (this case has no payload)", payload)),
                Some(t) => Ok(Arg::Variant(case.name.to_string(), Some(Box::new(to_arg(t, payload, &at)?)))),
            }
        }
        other => Err(p.expected(&format!("a case name or {{\"case\": payload}} (one of {})", names()), other)),
    }
}

/// Reads an integer of type `T` (named `name` in messages).
fn int<T>(v: &Value, p: &Path<'_>, name: &str) -> Result<T, MappingError>
where
    T: TryFrom<i128> + Bounded,
{
    let out_of_range =
        |n: &dyn fmt::Display| p.err(format!("{n} is out of range for {name} ({} to {})", T::MIN, T::MAX));
    let Value::Number(n) = v else {
        return Err(p.expected(&format!("an integer ({name})"), v));
    };
    let exact: i128 = if let Some(u) = n.as_u64() {
        i128::from(u)
    } else if let Some(i) = n.as_i64() {
        i128::from(i)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() != 0.0 || !f.is_finite() {
            return Err(p.err(format!("expected an integer ({name}), got {n}")));
        }
        if f < T::MIN as f64 || f > T::MAX as f64 {
            return Err(out_of_range(n));
        }
        // Doubles hold every integer exactly only up to 2^53.
        if f.abs() > 9_007_199_254_740_992.0 {
            return Err(p.err(format!("{n} is not exact; write large integers without a fraction or exponent")));
        }
        f as i128
    };
    T::try_from(exact).map_err(|_| out_of_range(n))
}

/// Bounds of an integer type, for range messages.
trait Bounded {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! bounded {
    ($($t:ty),*) => {
        $(impl Bounded for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        })*
    };
}

bounded!(i8, u8, i16, u16, i32, u32, i64, u64);

fn float(v: &Value, p: &Path<'_>, name: &str) -> Result<f64, MappingError> {
    match v {
        Value::Number(n) => {
            n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| p.err(format!("{n} is not a finite {name}")))
        }
        other => Err(p.expected(&format!("a number ({name})"), other)),
    }
}

/// `list<u8>` from a base64 string or an array of bytes.
fn bytes(v: &Value, p: &Path<'_>) -> Result<Arg, MappingError> {
    let raw: Vec<u8> = match v {
        Value::String(s) => decode_base64(s).map_err(|e| p.err(format!("not valid base64 (list<u8>): {e}")))?,
        Value::Array(items) => {
            items.iter().enumerate().map(|(i, x)| int::<u8>(x, &p.index(i), "u8")).collect::<Result<_, _>>()?
        }
        other => return Err(p.expected("a base64 string or an array of bytes (list<u8>)", other)),
    };
    Ok(Arg::Bytes(raw))
}

/// Standard base64, padding optional; the URL-safe alphabet is accepted too.
fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let url_safe = s.contains(['-', '_']);
    let padded = s.ends_with('=');
    let engine = match (url_safe, padded) {
        (false, true) => &STANDARD,
        (false, false) => &STANDARD_NO_PAD,
        (true, true) => &URL_SAFE,
        (true, false) => &URL_SAFE_NO_PAD,
    };
    engine.decode(s)
}

/// Converts a value to JSON without its type (see the module docs for the mapping).
///
/// Without the type, a `list<u8>` is recognised by its elements: an empty one renders as `[]`
/// and an empty `map<string, V>` as `[]`. [`val_to_json_typed`] renders them as `""` and `{}`,
/// as the schema says; [`invoke`] uses it. Resources, futures, streams and error-contexts render
/// as `null`.
pub fn val_to_json(v: &Val) -> Value {
    match v {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(n) => Value::from(*n),
        Val::U8(n) => Value::from(*n),
        Val::S16(n) => Value::from(*n),
        Val::U16(n) => Value::from(*n),
        Val::S32(n) => Value::from(*n),
        Val::U32(n) => Value::from(*n),
        Val::S64(n) => Value::from(*n),
        Val::U64(n) => Value::from(*n),
        Val::Float32(f) => f32_json(*f),
        Val::Float64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s.clone()),
        Val::List(items) => {
            if !items.is_empty() && items.iter().all(|x| matches!(x, Val::U8(_))) {
                base64_json(items)
            } else {
                Value::Array(items.iter().map(val_to_json).collect())
            }
        }
        Val::FixedLengthList(items) | Val::Tuple(items) => Value::Array(items.iter().map(val_to_json).collect()),
        Val::Map(pairs) => {
            if !pairs.is_empty() && pairs.iter().all(|(k, _)| matches!(k, Val::String(_))) {
                map_object(pairs, |_, v| val_to_json(v))
            } else {
                map_pairs(pairs, |_, v| val_to_json(v), |_, v| val_to_json(v))
            }
        }
        Val::Record(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), val_to_json(v))).collect()),
        Val::Variant(case, None) => Value::String(case.clone()),
        Val::Variant(case, Some(payload)) => object1(case, val_to_json(payload)),
        Val::Enum(case) => Value::String(case.clone()),
        Val::Option(None) => Value::Null,
        Val::Option(Some(x)) => val_to_json(x),
        Val::Result(Ok(x)) => object1("ok", x.as_deref().map_or(Value::Null, val_to_json)),
        Val::Result(Err(x)) => object1("err", x.as_deref().map_or(Value::Null, val_to_json)),
        Val::Flags(names) => Value::Array(names.iter().cloned().map(Value::String).collect()),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

/// Converts a value of type `ty` to JSON; where the value does not have the type's shape (which
/// wasmtime's type checks rule out for values a call returns) it falls back to [`val_to_json`].
pub fn val_to_json_typed(ty: &Type, v: &Val) -> Value {
    match (ty, v) {
        (Type::List(l), Val::List(items)) => {
            let elem = l.ty();
            if matches!(elem, Type::U8) {
                base64_json(items)
            } else {
                Value::Array(items.iter().map(|x| val_to_json_typed(&elem, x)).collect())
            }
        }
        (Type::FixedLengthList(l), Val::FixedLengthList(items)) => {
            let elem = l.ty();
            Value::Array(items.iter().map(|x| val_to_json_typed(&elem, x)).collect())
        }
        (Type::Map(m), Val::Map(pairs)) => {
            let (kt, vt) = (m.key(), m.value());
            if matches!(kt, Type::String) {
                map_object(pairs, |_, v| val_to_json_typed(&vt, v))
            } else {
                map_pairs(pairs, |_, k| val_to_json_typed(&kt, k), |_, v| val_to_json_typed(&vt, v))
            }
        }
        (Type::Record(r), Val::Record(fields)) if r.fields().len() == fields.len() => Value::Object(
            r.fields().zip(fields).map(|(f, (name, v))| (name.clone(), val_to_json_typed(&f.ty, v))).collect(),
        ),
        (Type::Tuple(t), Val::Tuple(items)) if t.types().len() == items.len() => {
            Value::Array(t.types().zip(items).map(|(t, v)| val_to_json_typed(&t, v)).collect())
        }
        (Type::Variant(var), Val::Variant(case, Some(payload))) => {
            match var.cases().find(|c| c.name == case).and_then(|c| c.ty) {
                Some(t) => object1(case, val_to_json_typed(&t, payload)),
                None => val_to_json(v),
            }
        }
        (Type::Option(o), Val::Option(Some(x))) => val_to_json_typed(&o.ty(), x),
        (Type::Result(r), Val::Result(res)) => {
            let (arm, ty, x) = match res {
                Ok(x) => ("ok", r.ok(), x),
                Err(x) => ("err", r.err(), x),
            };
            let payload = match (ty, x.as_deref()) {
                (Some(t), Some(x)) => val_to_json_typed(&t, x),
                (None, Some(x)) => val_to_json(x),
                (_, None) => Value::Null,
            };
            object1(arm, payload)
        }
        _ => val_to_json(v),
    }
}

pub(super) fn f32_json(f: f32) -> Value {
    // Through the shortest decimal form, so 0.1f32 reads as 0.1 rather than 0.10000000149011612.
    f.to_string().parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::Null, Value::Number)
}

fn base64_json(items: &[Val]) -> Value {
    let raw: Vec<u8> = items.iter().map(|x| if let Val::U8(b) = x { *b } else { 0 }).collect();
    Value::String(STANDARD.encode(raw))
}

fn object1(key: &str, value: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(key.to_string(), value);
    Value::Object(m)
}

fn map_object(pairs: &[(Val, Val)], value: impl Fn(usize, &Val) -> Value) -> Value {
    // Later duplicates win, as in the component model's map semantics.
    Value::Object(
        pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let key = match k {
                    Val::String(s) => s.clone(),
                    other => val_to_json(other).to_string(),
                };
                (key, value(i, v))
            })
            .collect(),
    )
}

fn map_pairs(pairs: &[(Val, Val)], key: impl Fn(usize, &Val) -> Value, value: impl Fn(usize, &Val) -> Value) -> Value {
    Value::Array(pairs.iter().enumerate().map(|(i, (k, v))| Value::Array(vec![key(i, k), value(i, v)])).collect())
}

/// Which side of a call a schema describes: inputs accept a few more spellings than outputs
/// produce (bytes as arrays, `{"case": null}`), outputs may hold `null` for non-finite floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the operation accepts.
    Input,
    /// What the operation returns.
    Output,
}

const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// `{"name", "interface", "qualified_name", "input", "output"}`: the operation's names and JSON
/// Schemas (2020-12) of its input object and of its output.
///
/// Schemas describe the canonical spellings: the snake_case aliases the host also accepts on
/// input are not listed.
pub fn operation_schema(op: &OperationInfo) -> Value {
    let mut input = params_schema(op);
    let mut output = match &op.result {
        Some(t) => type_schema(t, Direction::Output),
        None => json!({"type": "null"}),
    };
    for s in [&mut input, &mut output] {
        if let Value::Object(m) = s {
            m.insert("$schema".into(), Value::String(SCHEMA_DIALECT.into()));
        }
    }
    json!({
        "name": op.name,
        "interface": op.interface,
        "qualified_name": op.qualified_name(),
        "input": input,
        "output": output,
    })
}

/// The JSON Schema of an operation's input object.
pub(crate) fn params_schema(op: &OperationInfo) -> Value {
    let properties: Map<String, Value> =
        op.params.iter().map(|(n, t)| (n.clone(), type_schema(t, Direction::Input))).collect();
    let required: Vec<&str> =
        op.params.iter().filter(|(_, t)| !matches!(t, Type::Option(_))).map(|(n, _)| n.as_str()).collect();
    let ty = if op.params.is_empty() { json!(["object", "null"]) } else { json!("object") };
    let mut s = json!({
        "type": ty,
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

/// The JSON Schema of values of type `ty`, for `direction`.
pub fn type_schema(ty: &Type, direction: Direction) -> Value {
    let input = direction == Direction::Input;
    let int = |min: i128, max: i128| json!({"type": "integer", "minimum": int_json(min), "maximum": int_json(max)});
    match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => int(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => int(0, u8::MAX.into()),
        Type::S16 => int(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => int(0, u16::MAX.into()),
        Type::S32 => int(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => int(0, u32::MAX.into()),
        Type::S64 => int(i64::MIN.into(), i64::MAX.into()),
        Type::U64 => int(0, u64::MAX.into()),
        Type::Float32 | Type::Float64 if input => json!({"type": "number"}),
        Type::Float32 | Type::Float64 => json!({"type": ["number", "null"]}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(l) => {
            let elem = l.ty();
            if matches!(elem, Type::U8) {
                let b64 = json!({"type": "string", "contentEncoding": "base64"});
                if input { json!({"anyOf": [b64, {"type": "array", "items": int(0, 255)}]}) } else { b64 }
            } else {
                json!({"type": "array", "items": type_schema(&elem, direction)})
            }
        }
        Type::FixedLengthList(l) => json!({
            "type": "array",
            "items": type_schema(&l.ty(), direction),
            "minItems": l.len(),
            "maxItems": l.len(),
        }),
        Type::Map(m) => {
            let (k, v) = (m.key(), m.value());
            let pairs = json!({
                "type": "array",
                "items": {
                    "type": "array",
                    "prefixItems": [type_schema(&k, direction), type_schema(&v, direction)],
                    "items": false,
                    "minItems": 2,
                },
            });
            if matches!(k, Type::String) {
                let object = json!({"type": "object", "additionalProperties": type_schema(&v, direction)});
                if input { json!({"anyOf": [object, pairs]}) } else { object }
            } else {
                pairs
            }
        }
        Type::Record(r) => {
            let properties: Map<String, Value> =
                r.fields().map(|f| (f.name.to_string(), type_schema(&f.ty, direction))).collect();
            // Outputs always carry every field (options as null); inputs may leave options out.
            let required: Vec<&str> =
                r.fields().filter(|f| !input || !matches!(f.ty, Type::Option(_))).map(|f| f.name).collect();
            json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
        }
        Type::Tuple(t) => {
            let items: Vec<Value> = t.types().map(|t| type_schema(&t, direction)).collect();
            let n = items.len();
            json!({"type": "array", "prefixItems": items, "items": false, "minItems": n, "maxItems": n})
        }
        Type::Variant(v) => {
            let mut one_of = Vec::new();
            let bare: Vec<&str> = v.cases().filter(|c| c.ty.is_none()).map(|c| c.name).collect();
            if !bare.is_empty() {
                one_of.push(json!({"type": "string", "enum": bare}));
            }
            for case in v.cases() {
                let payload = match (&case.ty, input) {
                    (Some(t), _) => type_schema(t, direction),
                    (None, true) => json!({"type": "null"}),
                    (None, false) => continue,
                };
                one_of.push(single_key_object(case.name, payload));
            }
            json!({"oneOf": one_of})
        }
        Type::Enum(e) => json!({"type": "string", "enum": e.names().collect::<Vec<_>>()}),
        Type::Option(o) => json!({"anyOf": [type_schema(&o.ty(), direction), {"type": "null"}]}),
        Type::Result(r) => {
            let arm = |t: Option<Type>| t.map_or(json!({"type": "null"}), |t| type_schema(&t, direction));
            json!({"oneOf": [single_key_object("ok", arm(r.ok())), single_key_object("err", arm(r.err()))]})
        }
        Type::Flags(f) => json!({
            "type": "array",
            "items": {"type": "string", "enum": f.names().collect::<Vec<_>>()},
            "uniqueItems": true,
        }),
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            json!({"not": {}, "description": format!("{} values have no JSON form", describe(ty))})
        }
    }
}

/// An integer bound as a JSON number (every bound fits `i64` or `u64`).
fn int_json(n: i128) -> Value {
    match (u64::try_from(n), i64::try_from(n)) {
        (Ok(u), _) => Value::from(u),
        (_, Ok(i)) => Value::from(i),
        _ => Value::Null,
    }
}

fn single_key_object(key: &str, schema: Value) -> Value {
    json!({"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": false})
}

/// What an operation returned, with connector errors told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynamicOutcome {
    /// The operation succeeded: the JSON of `T` for `result<T, connector-error>` (`null` for
    /// `result<_, connector-error>`), or of the whole result for any other result type.
    Ok(Value),
    /// The operation returned `err(connector-error)`: `kind` is the case (`retryable`,
    /// `permanent`, `rate-limited`, `unauthorized`) and `error` its payload's JSON.
    ConnectorError {
        /// The case: `retryable`, `permanent`, `rate-limited` or `unauthorized`.
        kind: String,
        /// The case's payload, as JSON.
        error: Value,
    },
}

impl DynamicOutcome {
    /// Whether the operation succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, DynamicOutcome::Ok(_))
    }
}

/// The cases of `patchbay:connector/types.connector-error`; a variant with exactly these cases is
/// taken to be it (type names are not part of a component's types).
pub(crate) const CONNECTOR_ERROR_CASES: [&str; 4] = ["retryable", "permanent", "rate-limited", "unauthorized"];

/// Whether `ty` is `connector-error` (matched by its case names).
pub(crate) fn is_connector_error(ty: &Type) -> bool {
    match ty {
        Type::Variant(v) => {
            v.cases().len() == CONNECTOR_ERROR_CASES.len() && v.cases().all(|c| CONNECTOR_ERROR_CASES.contains(&c.name))
        }
        _ => false,
    }
}

/// Splits a returned value into success and connector error (see [`DynamicOutcome`]).
pub fn outcome(result: Option<&Type>, value: Option<&Val>) -> DynamicOutcome {
    let (Some(ty), Some(v)) = (result, value) else {
        return DynamicOutcome::Ok(Value::Null);
    };
    if let (Type::Result(r), Val::Result(res)) = (ty, v)
        && let Some(err_ty) = r.err().filter(is_connector_error)
    {
        match res {
            Ok(x) => {
                let json = match (r.ok(), x.as_deref()) {
                    (Some(t), Some(x)) => val_to_json_typed(&t, x),
                    (None, Some(x)) => val_to_json(x),
                    (_, None) => Value::Null,
                };
                return DynamicOutcome::Ok(json);
            }
            Err(Some(e)) => {
                if let Val::Variant(kind, payload) = &**e {
                    let error = match (payload.as_deref(), case_type(&err_ty, kind)) {
                        (Some(p), Some(t)) => val_to_json_typed(&t, p),
                        (Some(p), None) => val_to_json(p),
                        (None, _) => Value::Null,
                    };
                    return DynamicOutcome::ConnectorError { kind: kind.clone(), error };
                }
            }
            Err(None) => {}
        }
    }
    DynamicOutcome::Ok(val_to_json_typed(ty, v))
}

fn case_type(variant: &Type, case: &str) -> Option<Type> {
    match variant {
        Type::Variant(v) => v.cases().find(|c| c.name == case).and_then(|c| c.ty),
        _ => None,
    }
}

/// A resolved operation with its converted arguments, ready to run.
struct Prepared {
    label: String,
    index: ComponentExportIndex,
    args: Vec<Arg>,
    shape: canon::Shape,
    result: Option<Type>,
}

fn prepare(
    component: &LoadedComponent,
    callable: &[OperationInfo],
    operation: &str,
    input: &Value,
) -> Result<Prepared, InvokeError> {
    let op = find_operation(callable, operation)?;
    let label = op.qualified_name();
    if let Some(reason) = op.unsupported() {
        return Err(InvokeError::Unsupported { operation: label, reason });
    }
    let args = params_args(op, input).map_err(InvokeError::BadInput)?;
    let c = component.component();
    let instance = if op.interface.is_empty() { None } else { c.get_export_index(None, op.interface.as_str()) };
    let index = match (op.interface.is_empty(), instance) {
        (true, _) => c.get_export_index(None, op.name.as_str()),
        (false, Some(i)) => c.get_export_index(Some(&i), op.name.as_str()),
        (false, None) => None,
    }
    .ok_or_else(|| InvokeError::Unsupported {
        operation: label.clone(),
        reason: "the function is listed in the component's type but cannot be looked up".into(),
    })?;
    let shape = canon::Shape::of(&op.params, op.result.as_ref());
    Ok(Prepared { label, index, args, shape, result: op.result.clone() })
}

/// Runs a prepared call; the outcome is the JSON of the function's whole result (`null` when it
/// has none), lifted straight from the guest's memory (see [`canon`]).
async fn run(
    runtime: &Runtime,
    component: &LoadedComponent,
    installation: &Installation,
    prepared: Prepared,
) -> (CallReport<Value>, Option<Type>) {
    let Prepared { label, index, args, shape, result } = prepared;
    let name = label.clone();
    let report = runtime
        .call(component, installation, &label, move |store, instance, _| {
            Box::pin(async move {
                let func = instance
                    .get_func(&mut *store, index)
                    .ok_or_else(|| wasmtime::Error::msg(format!("export {name} is not a function")))?;
                canon::call(store, func, shape, args).await
            })
        })
        .await;
    (report, result)
}

/// Splits the JSON of a returned value into success and connector error, like [`outcome`].
fn json_outcome(result: Option<&Type>, json: Value) -> DynamicOutcome {
    let connector_result = matches!(result, Some(Type::Result(r)) if r.err().as_ref().is_some_and(is_connector_error));
    if !connector_result {
        return DynamicOutcome::Ok(json);
    }
    match json {
        Value::Object(mut arm) if arm.len() == 1 => {
            if let Some(ok) = arm.remove("ok") {
                return DynamicOutcome::Ok(ok);
            }
            match arm.remove("err") {
                Some(Value::String(kind)) => DynamicOutcome::ConnectorError { kind, error: Value::Null },
                Some(Value::Object(case)) if case.len() == 1 => {
                    let mut case = case.into_iter();
                    match case.next() {
                        Some((kind, error)) => DynamicOutcome::ConnectorError { kind, error },
                        None => DynamicOutcome::Ok(Value::Null),
                    }
                }
                Some(other) => DynamicOutcome::Ok(object1("err", other)),
                None => DynamicOutcome::Ok(Value::Object(arm)),
            }
        }
        other => DynamicOutcome::Ok(other),
    }
}

/// Calls `operation` (see [`find_operation`] for the naming) of `component` for `installation`
/// with a JSON input object (see the module docs), through `Runtime::call`.
///
/// The operation is resolved and its input converted before anything runs: those failures are
/// [`InvokeError`]s. Failures while running (traps, limits) are in the report's outcome.
pub async fn invoke(
    runtime: &Runtime,
    component: &LoadedComponent,
    installation: &Installation,
    operation: &str,
    input: Value,
) -> Result<CallReport<DynamicOutcome>, InvokeError> {
    invoke_in(runtime, component, component.operations(), installation, operation, input).await
}

/// Like [`invoke`], but any exported function can be called, operation or not. For tests of the
/// JSON mapping with components that export an interface of their own; the host never calls it.
pub async fn invoke_export(
    runtime: &Runtime,
    component: &LoadedComponent,
    installation: &Installation,
    function: &str,
    input: Value,
) -> Result<CallReport<DynamicOutcome>, InvokeError> {
    invoke_in(runtime, component, component.exported_functions(), installation, function, input).await
}

async fn invoke_in(
    runtime: &Runtime,
    component: &LoadedComponent,
    callable: &[OperationInfo],
    installation: &Installation,
    operation: &str,
    input: Value,
) -> Result<CallReport<DynamicOutcome>, InvokeError> {
    let prepared = prepare(component, callable, operation, &input)?;
    drop(input);
    let (report, result) = run(runtime, component, installation, prepared).await;
    // The output leaves the sandbox: no secret of the installation goes with it.
    Ok(report.map(|v| match json_outcome(result.as_ref(), v) {
        DynamicOutcome::Ok(mut v) => {
            installation.scrubber.scrub_json(&mut v);
            DynamicOutcome::Ok(v)
        }
        DynamicOutcome::ConnectorError { kind, mut error } => {
            installation.scrubber.scrub_json(&mut error);
            DynamicOutcome::ConnectorError { kind, error }
        }
    }))
}

/// Like [`invoke`], but the outcome is the JSON of the function's whole result as the mapping
/// renders it (`{"ok": …}` / `{"err": {"rate-limited": …}}`; `null` for a function without
/// result).
pub async fn invoke_raw(
    runtime: &Runtime,
    component: &LoadedComponent,
    installation: &Installation,
    operation: &str,
    input: Value,
) -> Result<CallReport<Value>, InvokeError> {
    let prepared = prepare(component, component.operations(), operation, &input)?;
    drop(input);
    let (report, _) = run(runtime, component, installation, prepared).await;
    Ok(report.map(|mut json| {
        installation.scrubber.scrub_json(&mut json);
        json
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_interface_names() {
        assert_eq!(short_interface_name("patchbay:connector/notifications@0.1.0"), "notifications");
        assert_eq!(short_interface_name("wasi:cli/run"), "run");
        assert_eq!(short_interface_name("plain"), "plain");
    }

    #[test]
    fn paths_render_like_accessors() {
        let root = Path::ROOT;
        let n = root.key("notification");
        let to = n.key("to");
        let first = to.index(0);
        assert_eq!(first.key("address").render(), "notification.to[0].address");
        assert_eq!(root.key("odd key").render(), "[\"odd key\"]");
        assert_eq!(root.index(3).render(), "[3]");
        assert_eq!(root.render(), "");
    }

    #[test]
    fn untyped_output_of_every_value_kind() {
        let cases: Vec<(Val, Value)> = vec![
            (Val::Bool(true), json!(true)),
            (Val::S8(-8), json!(-8)),
            (Val::U64(u64::MAX), json!(u64::MAX)),
            (Val::S64(i64::MIN), json!(i64::MIN)),
            (Val::Float32(0.1), json!(0.1)),
            (Val::Float32(f32::NAN), Value::Null),
            (Val::Float64(f64::INFINITY), Value::Null),
            (Val::Float64(-2.5), json!(-2.5)),
            (Val::Char('é'), json!("é")),
            (Val::List(vec![Val::U8(1), Val::U8(2), Val::U8(255)]), json!("AQL/")),
            (Val::List(vec![Val::U32(1)]), json!([1])),
            (Val::List(vec![]), json!([])),
            (
                Val::Map(vec![(Val::String("a".into()), Val::U32(1)), (Val::String("a".into()), Val::U32(2))]),
                json!({"a": 2}),
            ),
            (Val::Map(vec![(Val::U32(7), Val::Bool(false))]), json!([[7, false]])),
            (Val::Tuple(vec![Val::String("k".into()), Val::U16(2)]), json!(["k", 2])),
            (Val::FixedLengthList(vec![Val::U8(1), Val::U8(2)]), json!([1, 2])),
            (Val::Variant("timeout".into(), None), json!("timeout")),
            (Val::Variant("failed".into(), Some(Box::new(Val::String("x".into())))), json!({"failed": "x"})),
            (Val::Enum("dark-green".into()), json!("dark-green")),
            (Val::Option(None), Value::Null),
            (Val::Option(Some(Box::new(Val::Option(None)))), Value::Null),
            (Val::Result(Ok(None)), json!({"ok": null})),
            (Val::Result(Err(Some(Box::new(Val::U8(3))))), json!({"err": 3})),
            (Val::Flags(vec!["read".into(), "admin-access".into()]), json!(["read", "admin-access"])),
            (Val::Record(vec![("retry-after-ms".into(), Val::U64(7000))]), json!({"retry-after-ms": 7000})),
        ];
        for (val, want) in cases {
            assert_eq!(val_to_json(&val), want, "{val:?}");
        }
    }

    #[test]
    fn base64_input_variants() {
        assert_eq!(decode_base64("AQL/").unwrap(), vec![1, 2, 255]);
        assert_eq!(decode_base64("AQL_").unwrap(), vec![1, 2, 255]);
        assert_eq!(decode_base64("AQ==").unwrap(), vec![1]);
        assert_eq!(decode_base64("AQ").unwrap(), vec![1]);
        assert!(decode_base64("A").is_err());
        assert!(decode_base64("!!!!").is_err());
    }

    #[test]
    fn mapping_error_display() {
        let e = MappingError { path: "a.b[0]".into(), message: "expected a string, got the number 5".into() };
        assert_eq!(e.to_string(), "a.b[0]: expected a string, got the number 5");
        let e = MappingError { path: String::new(), message: "m".into() };
        assert_eq!(e.to_string(), "m");
    }
}
