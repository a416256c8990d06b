//! Field mappings: how a synced record's JSON object is reshaped on its way in (source record →
//! stored payload) or out (stored payload → destination record).
//!
//! A mapping is stored as JSON (the user documentation is `docs/sync-mapping.md`):
//!
//! ```json
//! { "keep_unmapped": false,
//!   "fields": [
//!     {"target": "title", "source": "name"},
//!     {"target": "price_cents", "source": "variants.0.price", "transform": ["number", {"multiply": 100}, "round"]},
//!     {"target": "vendor", "source": "vendor", "transform": ["trim", "lowercase"], "default": "unknown"},
//!     {"target": "origin", "constant": "shopify"},
//!     {"target": "meta.sku", "source": "sku", "required": true}
//!   ] }
//! ```
//!
//! [`Mapping::parse`] validates it once and compiles it: paths are split into segments (array
//! indices pre-parsed), transforms into an enum, and the targets into a tree so that
//! [`Mapping::apply`] builds every output object exactly once, without looking paths up again.
//! Applying a field clones the source value once and transforms it in place where it can.
//!
//! Value rules, in order, for a field with a `source`:
//! 1. The source path is resolved; a path that does not resolve is *missing*.
//! 2. The transforms run in order. A missing or `null` value passes through every transform
//!    untouched except `{"default": v}`, which replaces it. Arrays are transformed element by
//!    element, except by `split`, `join`, `null_if_empty` and `default`.
//! 3. A value still missing or `null` becomes the field's `default` if it has one (the default is
//!    written as given, not transformed); otherwise, with `"required": true`, it is an item error;
//!    otherwise a missing value leaves the target out and a `null` writes `null`.

use std::fmt;

use serde_json::{Map, Number, Value};

use super::cron::{days_from_civil, days_in_month};

/// Most fields a mapping may have.
pub(crate) const MAX_FIELDS: usize = 500;

/// Most decimal places `{"round": n}` accepts.
pub(crate) const MAX_ROUND_DIGITS: u64 = 15;

/// A mapping problem, with the JSON location of the offending part (`fields[2].transform[1]`);
/// empty for the mapping as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappingError {
    /// Where the problem is, e.g. `fields[2].transform[1]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

impl std::error::Error for MappingError {}

fn error(path: impl Into<String>, message: impl Into<String>) -> MappingError {
    MappingError { path: path.into(), message: message.into() }
}

/// A validated, compiled field mapping; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapping {
    keep_unmapped: bool,
    fields: Vec<Field>,
    /// The targets as a tree, children in the order their first field appears.
    tree: Vec<(String, Node)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// The value of `fields[i]`.
    Leaf(usize),
    /// An object; `first` is the first field that writes into it (for error messages).
    Branch { first: usize, children: Vec<(String, Node)> },
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    target: Path,
    source: Source,
    transforms: Vec<Transform>,
    default: Option<Value>,
    required: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Path(Path),
    Constant(Value),
}

/// A dotted path, split into segments.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    /// As written (the escapes `\.` and `\\` are the only ones, so this is also canonical).
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    key: String,
    /// The key as an array index, if it is a canonical decimal number.
    index: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    String,
    Number,
    Integer,
    Boolean,
    /// Round to this many decimal places (0: to an integer).
    Round(u32),
    Multiply(Number),
    Divide(Number),
    Replace(String, String),
    Split(String),
    Join(String),
    Prefix(String),
    Suffix(String),
    Truncate(usize),
    NullIfEmpty,
    Default(Value),
    Map(Map<String, Value>, Option<Value>),
    TimestampMs,
    Iso8601,
}

const ROOT_KEYS: &str = "keep_unmapped, fields";
const FIELD_KEYS: &[&str] = &["target", "source", "constant", "transform", "default", "required"];
const TRANSFORM_NAMES: &str = "trim, lowercase, uppercase, string, number, integer, boolean, round, multiply, \
                               divide, replace, split, join, prefix, suffix, truncate, null_if_empty, default, \
                               map, timestamp_ms, iso8601";

impl Mapping {
    /// Validates and compiles a mapping's JSON.
    ///
    /// Refused: a root that is not an object, unknown keys, more than [`MAX_FIELDS`] fields, a
    /// field without exactly one of `source` and `constant`, empty or malformed paths, duplicate
    /// or conflicting targets (`a` and `a.b`), unknown transforms and bad transform parameters.
    /// The error names the JSON location.
    pub(crate) fn parse(json: &Value) -> Result<Mapping, MappingError> {
        let root = json.as_object().ok_or_else(|| error("", format!("expected an object, got {}", kind(json))))?;
        if let Some(key) = root.keys().find(|k| !matches!(k.as_str(), "keep_unmapped" | "fields")) {
            return Err(error("", format!("unknown key \"{key}\"; expected one of {ROOT_KEYS}")));
        }
        let keep_unmapped = match root.get("keep_unmapped") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(error("keep_unmapped", format!("expected a boolean, got {}", kind(other)))),
        };
        let items: &[Value] = match root.get("fields") {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => return Err(error("fields", format!("expected an array, got {}", kind(other)))),
        };
        if items.len() > MAX_FIELDS {
            return Err(error("fields", format!("{} fields; at most {MAX_FIELDS} are allowed", items.len())));
        }
        let fields = items.iter().enumerate().map(|(i, item)| Field::parse(i, item)).collect::<Result<Vec<_>, _>>()?;
        let tree = build_tree(&fields)?;
        Ok(Mapping { keep_unmapped, fields, tree })
    }

    /// Whether the output starts from a copy of the whole input record.
    #[cfg(test)]
    pub(crate) fn keep_unmapped(&self) -> bool {
        self.keep_unmapped
    }

    /// The number of fields.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the mapping has no fields (with `keep_unmapped` it then copies records as they are).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The normalized JSON form; [`Mapping::parse`] of it gives back an equal mapping.
    ///
    /// Both root keys are always present; a field lists `transform` only when it has transforms,
    /// `required` only when true; parameterless transforms are bare strings and `{"round": 0}` is
    /// `"round"`.
    pub(crate) fn to_json(&self) -> Value {
        let fields = self.fields.iter().map(Field::to_json).collect();
        let mut root = Map::new();
        root.insert("keep_unmapped".to_owned(), Value::Bool(self.keep_unmapped));
        root.insert("fields".to_owned(), Value::Array(fields));
        Value::Object(root)
    }

    /// Maps one record. The record must be a JSON object; an `Err` is an item-level error message
    /// naming the target (`price_cents: "abc" is not a number (transform number)`).
    pub(crate) fn apply(&self, record: &Value) -> Result<Value, String> {
        let Value::Object(input) = record else {
            return Err(format!("the record is {}, not an object", kind(record)));
        };
        let out = if self.keep_unmapped {
            let mut out = input.clone();
            self.merge(&self.tree, input, &mut out)?;
            out
        } else {
            let mut out = Map::new();
            self.build(&self.tree, input, &mut out)?;
            out
        };
        Ok(Value::Object(out))
    }

    /// Writes the targets under `nodes` into the fresh object `out`.
    fn build(
        &self,
        nodes: &[(String, Node)],
        input: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) -> Result<(), String> {
        for (key, node) in nodes {
            match node {
                Node::Leaf(i) => {
                    if let Some(value) = self.fields[*i].eval(input)? {
                        out.insert(key.clone(), value);
                    }
                }
                Node::Branch { children, .. } => {
                    let mut sub = Map::new();
                    self.build(children, input, &mut sub)?;
                    if !sub.is_empty() {
                        out.insert(key.clone(), Value::Object(sub));
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the targets under `nodes` into `out`, a copy of (part of) the input: nested
    /// targets merge into existing objects and replace anything else.
    fn merge(
        &self,
        nodes: &[(String, Node)],
        input: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) -> Result<(), String> {
        for (key, node) in nodes {
            match node {
                Node::Leaf(i) => {
                    if let Some(value) = self.fields[*i].eval(input)? {
                        out.insert(key.clone(), value);
                    }
                }
                Node::Branch { children, .. } => match out.get_mut(key) {
                    Some(Value::Object(existing)) => self.merge(children, input, existing)?,
                    _ => {
                        let mut sub = Map::new();
                        self.build(children, input, &mut sub)?;
                        if !sub.is_empty() {
                            out.insert(key.clone(), Value::Object(sub));
                        }
                    }
                },
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Mapping {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.to_json(), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Mapping {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = <Value as serde::Deserialize>::deserialize(deserializer)?;
        Mapping::parse(&json).map_err(serde::de::Error::custom)
    }
}

/// Builds the target tree, refusing duplicate and conflicting targets.
fn build_tree(fields: &[Field]) -> Result<Vec<(String, Node)>, MappingError> {
    let mut root: Vec<(String, Node)> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let at = || format!("fields[{i}].target");
        let target = &field.target.text;
        let conflict = |j: usize| {
            let other = &fields[j].target.text;
            if other == target {
                error(at(), format!("duplicate target \"{target}\" (also fields[{j}])"))
            } else {
                error(at(), format!("target \"{target}\" conflicts with \"{other}\" of fields[{j}]"))
            }
        };
        let mut level = &mut root;
        let segments = &field.target.segments;
        for (depth, segment) in segments.iter().enumerate() {
            let last = depth + 1 == segments.len();
            let pos = level.iter().position(|(key, _)| *key == segment.key);
            match (pos, last) {
                (None, true) => {
                    level.push((segment.key.clone(), Node::Leaf(i)));
                }
                (None, false) => {
                    level.push((segment.key.clone(), Node::Branch { first: i, children: Vec::new() }));
                    let Some((_, Node::Branch { children, .. })) = level.last_mut() else {
                        return Err(error(at(), "internal error building the target tree"));
                    };
                    level = children;
                }
                (Some(p), _) => match &mut level[p].1 {
                    Node::Leaf(j) => return Err(conflict(*j)),
                    Node::Branch { first, .. } if last => return Err(conflict(*first)),
                    Node::Branch { children, .. } => level = children,
                },
            }
        }
    }
    Ok(root)
}

impl Field {
    fn parse(i: usize, json: &Value) -> Result<Field, MappingError> {
        let at = format!("fields[{i}]");
        let obj = json.as_object().ok_or_else(|| error(&at, format!("expected an object, got {}", kind(json))))?;
        if let Some(key) = obj.keys().find(|k| !FIELD_KEYS.contains(&k.as_str())) {
            return Err(error(&at, format!("unknown key \"{key}\"; expected one of {}", FIELD_KEYS.join(", "))));
        }
        let target = match obj.get("target") {
            None => return Err(error(&at, "\"target\" is missing")),
            Some(Value::String(text)) => Path::parse(text).map_err(|m| error(format!("{at}.target"), m))?,
            Some(other) => {
                return Err(error(format!("{at}.target"), format!("expected a string, got {}", kind(other))));
            }
        };
        let source = match (obj.get("source"), obj.get("constant")) {
            (Some(_), Some(_)) => return Err(error(&at, "give either \"source\" or \"constant\", not both")),
            (None, None) => return Err(error(&at, "give either \"source\" or \"constant\"")),
            (Some(Value::String(text)), None) => {
                Source::Path(Path::parse(text).map_err(|m| error(format!("{at}.source"), m))?)
            }
            (Some(other), None) => {
                return Err(error(format!("{at}.source"), format!("expected a string, got {}", kind(other))));
            }
            (None, Some(value)) => Source::Constant(value.clone()),
        };
        let transforms = match obj.get("transform") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(j, t)| Transform::parse(&format!("{at}.transform[{j}]"), t))
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(error(
                    format!("{at}.transform"),
                    format!("expected an array of transforms, got {}", kind(other)),
                ));
            }
        };
        let default = obj.get("default").cloned();
        let required = match obj.get("required") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(error(format!("{at}.required"), format!("expected a boolean, got {}", kind(other))));
            }
        };
        if matches!(source, Source::Constant(_)) {
            for key in ["transform", "default", "required"] {
                if obj.contains_key(key) {
                    return Err(error(&at, format!("\"{key}\" applies only to a \"source\", not a \"constant\"")));
                }
            }
        }
        if required && default.is_some() {
            return Err(error(&at, "\"required\": true and \"default\" exclude each other"));
        }
        Ok(Field { target, source, transforms, default, required })
    }

    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("target".to_owned(), Value::String(self.target.text.clone()));
        match &self.source {
            Source::Path(path) => {
                obj.insert("source".to_owned(), Value::String(path.text.clone()));
            }
            Source::Constant(value) => {
                obj.insert("constant".to_owned(), value.clone());
            }
        }
        if !self.transforms.is_empty() {
            obj.insert("transform".to_owned(), Value::Array(self.transforms.iter().map(Transform::to_json).collect()));
        }
        if let Some(default) = &self.default {
            obj.insert("default".to_owned(), default.clone());
        }
        if self.required {
            obj.insert("required".to_owned(), Value::Bool(true));
        }
        Value::Object(obj)
    }

    /// The field's value for one record: `None` leaves the target out.
    fn eval(&self, input: &Map<String, Value>) -> Result<Option<Value>, String> {
        let path = match &self.source {
            Source::Constant(value) => return Ok(Some(value.clone())),
            Source::Path(path) => path,
        };
        let mut value = path.resolve(input).cloned();
        for transform in &self.transforms {
            value = match (value, transform) {
                (None | Some(Value::Null), Transform::Default(default)) => Some(default.clone()),
                (absent @ (None | Some(Value::Null)), _) => absent,
                (Some(v), _) => Some(
                    transform
                        .apply(v)
                        .map_err(|m| format!("{}: {m} (transform {})", self.target.text, transform.name()))?,
                ),
            };
        }
        match value {
            Some(Value::Null) | None if self.default.is_some() => Ok(self.default.clone()),
            Some(Value::Null) | None if self.required => {
                let what = if value.is_none() { "missing" } else { "null" };
                Err(format!("{}: required value is {what} (source \"{}\")", self.target.text, path.text))
            }
            value => Ok(value),
        }
    }
}

impl Path {
    fn parse(text: &str) -> Result<Path, String> {
        if text.is_empty() {
            return Err("empty path".to_owned());
        }
        let mut segments = Vec::new();
        let mut key = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('.' | '\\')) => key.push(escaped),
                    Some(other) => {
                        return Err(format!(
                            "path \"{text}\": unknown escape \"\\{other}\" (only \\. and \\\\ are escapes)"
                        ));
                    }
                    None => return Err(format!("path \"{text}\" ends with a lone backslash")),
                },
                '.' => {
                    if key.is_empty() {
                        return Err(format!("path \"{text}\" has an empty segment"));
                    }
                    segments.push(Segment::new(std::mem::take(&mut key)));
                }
                c => key.push(c),
            }
        }
        if key.is_empty() {
            return Err(format!("path \"{text}\" has an empty segment"));
        }
        segments.push(Segment::new(key));
        Ok(Path { text: text.to_owned(), segments })
    }

    /// The value at this path, if every segment resolves.
    fn resolve<'a>(&self, input: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = input.get(&first.key)?;
        for segment in rest {
            value = match value {
                Value::Object(map) => map.get(&segment.key)?,
                Value::Array(items) => items.get(segment.index?)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

impl Segment {
    fn new(key: String) -> Segment {
        let canonical =
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) && (key == "0" || !key.starts_with('0'));
        let index = if canonical { key.parse().ok() } else { None };
        Segment { key, index }
    }
}

impl Transform {
    fn parse(at: &str, json: &Value) -> Result<Transform, MappingError> {
        let unknown =
            |name: &str| error(at, format!("unknown transform \"{name}\"; expected one of {TRANSFORM_NAMES}"));
        match json {
            Value::String(name) => Ok(match name.as_str() {
                "trim" => Transform::Trim,
                "lowercase" => Transform::Lowercase,
                "uppercase" => Transform::Uppercase,
                "string" => Transform::String,
                "number" => Transform::Number,
                "integer" => Transform::Integer,
                "boolean" => Transform::Boolean,
                "round" => Transform::Round(0),
                "null_if_empty" => Transform::NullIfEmpty,
                "timestamp_ms" => Transform::TimestampMs,
                "iso8601" => Transform::Iso8601,
                "multiply" | "divide" | "replace" | "split" | "join" | "prefix" | "suffix" | "truncate" | "default"
                | "map" => {
                    return Err(error(at, format!("\"{name}\" needs a parameter: write it as {}", example(name))));
                }
                _ => return Err(unknown(name)),
            }),
            Value::Object(obj) => {
                if let Some(table) = obj.get("map") {
                    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "map" | "else")) {
                        return Err(error(at, format!("unknown key \"{key}\" in a map transform; expected map, else")));
                    }
                    let Value::Object(table) = table else {
                        return Err(error(at, format!("\"map\" expects an object, got {}", kind(table))));
                    };
                    return Ok(Transform::Map(table.clone(), obj.get("else").cloned()));
                }
                let mut entries = obj.iter();
                let (Some((name, param)), None) = (entries.next(), entries.next()) else {
                    return Err(error(
                        at,
                        "a transform object has exactly one key, the transform's name (plus \"else\" for map)",
                    ));
                };
                let string = || match param {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(error(at, format!("\"{name}\" expects a string, got {}", kind(other)))),
                };
                let number = || match param {
                    Value::Number(n) => Ok(n.clone()),
                    other => Err(error(at, format!("\"{name}\" expects a number, got {}", kind(other)))),
                };
                Ok(match name.as_str() {
                    "multiply" => Transform::Multiply(number()?),
                    "divide" => {
                        let n = number()?;
                        if n.as_f64() == Some(0.0) {
                            return Err(error(at, "\"divide\" by zero"));
                        }
                        Transform::Divide(n)
                    }
                    "round" => match param.as_u64() {
                        Some(digits) if digits <= MAX_ROUND_DIGITS => Transform::Round(digits as u32),
                        _ => {
                            return Err(error(
                                at,
                                format!(
                                    "\"round\" expects a number of decimal places 0-{MAX_ROUND_DIGITS}, got {}",
                                    show(param)
                                ),
                            ));
                        }
                    },
                    "replace" => match param.as_array().map(Vec::as_slice) {
                        Some([Value::String(from), Value::String(to)]) if !from.is_empty() => {
                            Transform::Replace(from.clone(), to.clone())
                        }
                        Some([Value::String(_), Value::String(_)]) => {
                            return Err(error(at, "\"replace\" needs a non-empty string to replace"));
                        }
                        _ => {
                            return Err(error(
                                at,
                                format!("\"replace\" expects [from, to], two strings, got {}", show(param)),
                            ));
                        }
                    },
                    "split" => {
                        let sep = string()?;
                        if sep.is_empty() {
                            return Err(error(at, "\"split\" needs a non-empty separator"));
                        }
                        Transform::Split(sep)
                    }
                    "join" => Transform::Join(string()?),
                    "prefix" => Transform::Prefix(string()?),
                    "suffix" => Transform::Suffix(string()?),
                    "truncate" => match param.as_u64().and_then(|n| usize::try_from(n).ok()) {
                        Some(n) => Transform::Truncate(n),
                        None => {
                            return Err(error(
                                at,
                                format!("\"truncate\" expects a number of characters, got {}", show(param)),
                            ));
                        }
                    },
                    "default" => Transform::Default(param.clone()),
                    "trim" | "lowercase" | "uppercase" | "string" | "number" | "integer" | "boolean"
                    | "null_if_empty" | "timestamp_ms" | "iso8601" => {
                        return Err(error(at, format!("\"{name}\" takes no parameter: write it as \"{name}\"")));
                    }
                    _ => return Err(unknown(name)),
                })
            }
            other => Err(error(at, format!("expected a transform name or object, got {}", kind(other)))),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Transform::Trim => "trim",
            Transform::Lowercase => "lowercase",
            Transform::Uppercase => "uppercase",
            Transform::String => "string",
            Transform::Number => "number",
            Transform::Integer => "integer",
            Transform::Boolean => "boolean",
            Transform::Round(_) => "round",
            Transform::Multiply(_) => "multiply",
            Transform::Divide(_) => "divide",
            Transform::Replace(..) => "replace",
            Transform::Split(_) => "split",
            Transform::Join(_) => "join",
            Transform::Prefix(_) => "prefix",
            Transform::Suffix(_) => "suffix",
            Transform::Truncate(_) => "truncate",
            Transform::NullIfEmpty => "null_if_empty",
            Transform::Default(_) => "default",
            Transform::Map(..) => "map",
            Transform::TimestampMs => "timestamp_ms",
            Transform::Iso8601 => "iso8601",
        }
    }

    fn to_json(&self) -> Value {
        let with = |param: Value| {
            let mut obj = Map::new();
            obj.insert(self.name().to_owned(), param);
            Value::Object(obj)
        };
        match self {
            Transform::Round(0) => Value::String("round".to_owned()),
            Transform::Round(digits) => with(Value::from(*digits)),
            Transform::Multiply(n) | Transform::Divide(n) => with(Value::Number(n.clone())),
            Transform::Replace(from, to) => with(Value::Array(vec![from.clone().into(), to.clone().into()])),
            Transform::Split(s) | Transform::Join(s) | Transform::Prefix(s) | Transform::Suffix(s) => {
                with(Value::String(s.clone()))
            }
            Transform::Truncate(n) => with(Value::from(*n)),
            Transform::Default(v) => with(v.clone()),
            Transform::Map(table, otherwise) => {
                let mut obj = Map::new();
                obj.insert("map".to_owned(), Value::Object(table.clone()));
                if let Some(v) = otherwise {
                    obj.insert("else".to_owned(), v.clone());
                }
                Value::Object(obj)
            }
            _ => Value::String(self.name().to_owned()),
        }
    }

    /// Applies the transform to a present, non-null value.
    fn apply(&self, value: Value) -> Result<Value, String> {
        match self {
            Transform::Split(sep) => match value {
                Value::String(s) => {
                    Ok(Value::Array(s.split(sep.as_str()).map(|p| Value::String(p.to_owned())).collect()))
                }
                other => Err(format!("{} is not a string", show(&other))),
            },
            Transform::Join(sep) => join(value, sep),
            Transform::NullIfEmpty => Ok(match &value {
                Value::String(s) if s.is_empty() => Value::Null,
                Value::Array(a) if a.is_empty() => Value::Null,
                Value::Object(o) if o.is_empty() => Value::Null,
                _ => value,
            }),
            Transform::Default(_) => Ok(value),
            _ => match value {
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| self.apply_scalar(item).map_err(|m| format!("element {i}: {m}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
                other => self.apply_scalar(other),
            },
        }
    }

    /// Applies an element-wise transform to one value (`null` stays `null`).
    fn apply_scalar(&self, value: Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(value);
        }
        let not_a_string = |v: &Value| format!("{} is not a string", show(v));
        match self {
            Transform::Trim => match value {
                Value::String(mut s) => {
                    let end = s.trim_end().len();
                    s.truncate(end);
                    let start = s.len() - s.trim_start().len();
                    s.drain(..start);
                    Ok(Value::String(s))
                }
                other => Err(not_a_string(&other)),
            },
            Transform::Lowercase => match value {
                Value::String(mut s) if s.is_ascii() => {
                    s.make_ascii_lowercase();
                    Ok(Value::String(s))
                }
                Value::String(s) => Ok(Value::String(s.to_lowercase())),
                other => Err(not_a_string(&other)),
            },
            Transform::Uppercase => match value {
                Value::String(mut s) if s.is_ascii() => {
                    s.make_ascii_uppercase();
                    Ok(Value::String(s))
                }
                Value::String(s) => Ok(Value::String(s.to_uppercase())),
                other => Err(not_a_string(&other)),
            },
            Transform::String => match value {
                Value::String(_) => Ok(value),
                Value::Number(n) => Ok(Value::String(n.to_string())),
                Value::Bool(b) => Ok(Value::String(b.to_string())),
                other => Err(format!("{} is not a scalar", show(&other))),
            },
            Transform::Number => match value {
                Value::Number(_) => Ok(value),
                Value::String(s) => parse_number(&s).ok_or_else(|| format!("{} is not a number", show_str(&s))),
                other => Err(format!("{} is not a number", show(&other))),
            },
            Transform::Integer => to_integer(value),
            Transform::Boolean => to_boolean(value),
            Transform::Round(digits) => match value {
                Value::Number(n) => round(n, *digits),
                other => Err(format!("{} is not a number", show(&other))),
            },
            Transform::Multiply(factor) => match value {
                Value::Number(n) => multiply(&n, factor),
                other => Err(format!("{} is not a number", show(&other))),
            },
            Transform::Divide(divisor) => match value {
                Value::Number(n) => divide(&n, divisor),
                other => Err(format!("{} is not a number", show(&other))),
            },
            Transform::Replace(from, to) => match value {
                Value::String(s) if s.contains(from.as_str()) => Ok(Value::String(s.replace(from.as_str(), to))),
                Value::String(_) => Ok(value),
                other => Err(not_a_string(&other)),
            },
            Transform::Prefix(prefix) => match value {
                Value::String(mut s) => {
                    s.insert_str(0, prefix);
                    Ok(Value::String(s))
                }
                other => Err(not_a_string(&other)),
            },
            Transform::Suffix(suffix) => match value {
                Value::String(mut s) => {
                    s.push_str(suffix);
                    Ok(Value::String(s))
                }
                other => Err(not_a_string(&other)),
            },
            Transform::Truncate(n) => match value {
                Value::String(mut s) => {
                    if let Some((at, _)) = s.char_indices().nth(*n) {
                        s.truncate(at);
                    }
                    Ok(Value::String(s))
                }
                other => Err(not_a_string(&other)),
            },
            Transform::Map(table, otherwise) => {
                let found = match &value {
                    Value::String(s) => table.get(s),
                    Value::Number(n) => table.get(&n.to_string()),
                    Value::Bool(b) => table.get(if *b { "true" } else { "false" }),
                    _ => None,
                };
                Ok(match (found, otherwise) {
                    (Some(mapped), _) => mapped.clone(),
                    (None, Some(otherwise)) => otherwise.clone(),
                    (None, None) => value,
                })
            }
            Transform::TimestampMs => match value {
                Value::String(s) => parse_datetime(&s)
                    .map(Value::from)
                    .ok_or_else(|| format!("{} is not an ISO 8601 date-time", show_str(&s))),
                Value::Number(n) => seconds_to_ms(&n).map(Value::from),
                other => Err(format!("{} is not a date-time or a number of seconds", show(&other))),
            },
            Transform::Iso8601 => {
                let ms = match &value {
                    Value::Number(n) => match n.as_i64() {
                        Some(ms) => Some(ms),
                        None => n.as_f64().map(f64::round).filter(|f| f.abs() < 9.0e15).map(|f| f as i64),
                    },
                    Value::String(s) => {
                        Some(parse_datetime(s).ok_or_else(|| format!("{} is not an ISO 8601 date-time", show_str(s)))?)
                    }
                    other => return Err(format!("{} is not a number of milliseconds", show(other))),
                };
                match ms.and_then(format_rfc3339) {
                    Some(text) => Ok(Value::String(text)),
                    None => Err(format!("{} is out of the range of dates (years 0000-9999)", show(&value))),
                }
            }
            Transform::Split(_) | Transform::Join(_) | Transform::NullIfEmpty | Transform::Default(_) => Ok(value),
        }
    }
}

fn example(name: &str) -> &'static str {
    match name {
        "multiply" => "{\"multiply\": 100}",
        "divide" => "{\"divide\": 100}",
        "replace" => "{\"replace\": [\"from\", \"to\"]}",
        "split" => "{\"split\": \",\"}",
        "join" => "{\"join\": \",\"}",
        "prefix" => "{\"prefix\": \"text\"}",
        "suffix" => "{\"suffix\": \"text\"}",
        "truncate" => "{\"truncate\": 100}",
        "default" => "{\"default\": value}",
        _ => "{\"map\": {\"from\": \"to\"}, \"else\": value}",
    }
}

fn join(value: Value, sep: &str) -> Result<Value, String> {
    let Value::Array(items) = value else {
        return Err(format!("{} is not an array", show(&value)));
    };
    let mut out = String::new();
    let mut first = true;
    for (i, item) in items.iter().enumerate() {
        let text = match item {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return Err(format!("element {i}: {} is not a scalar", show(other))),
        };
        if !first {
            out.push_str(sep);
        }
        out.push_str(&text);
        first = false;
    }
    Ok(Value::String(out))
}

/// A number from text: an integer when the text is one, otherwise a finite float.
fn parse_number(s: &str) -> Option<Value> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(Value::from(u));
    }
    // Rust also reads "inf" and "NaN"; a finite result excludes them.
    let f: f64 = t.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

fn float(f: f64) -> Result<Value, String> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| "the result is not a finite number".to_owned())
}

/// A whole float as an integer value, if it fits one.
fn whole(f: f64) -> Option<Value> {
    if f.fract() != 0.0 || !f.is_finite() {
        return None;
    }
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        Some(Value::from(f as i64))
    } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
        Some(Value::from(f as u64))
    } else {
        None
    }
}

fn to_integer(value: Value) -> Result<Value, String> {
    match &value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
        Value::Number(n) => n.as_f64().and_then(whole).ok_or_else(|| format!("{n} is not a whole number")),
        Value::String(s) => match parse_number(s) {
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
            Some(Value::Number(n)) => {
                n.as_f64().and_then(whole).ok_or_else(|| format!("{} is not a whole number", show_str(s)))
            }
            _ => Err(format!("{} is not an integer", show_str(s))),
        },
        other => Err(format!("{} is not an integer", show(other))),
    }
}

fn to_boolean(value: Value) -> Result<Value, String> {
    let b = match &value {
        Value::Bool(_) => return Ok(value),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => {
            let t = s.trim();
            if ["true", "1", "yes"].iter().any(|w| t.eq_ignore_ascii_case(w)) {
                Some(true)
            } else if ["false", "0", "no"].iter().any(|w| t.eq_ignore_ascii_case(w)) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    };
    b.map(Value::Bool).ok_or_else(|| format!("{} is not a boolean", show(&value)))
}

fn round(n: Number, digits: u32) -> Result<Value, String> {
    if n.is_i64() || n.is_u64() {
        return Ok(Value::Number(n));
    }
    let f = n.as_f64().ok_or_else(|| format!("{n} is not a number"))?;
    if digits == 0 {
        let r = f.round();
        return whole(r).map_or_else(|| float(r), Ok);
    }
    // `digits` is at most MAX_ROUND_DIGITS.
    let scale = 10f64.powi(digits as i32);
    let r = (f * scale).round() / scale;
    // Very large values lose nothing to rounding, and scaling them could overflow.
    float(if r.is_finite() { r } else { f })
}

fn multiply(n: &Number, factor: &Number) -> Result<Value, String> {
    if let (Some(a), Some(b)) = (as_i128(n), as_i128(factor))
        && let Some(product) = a.checked_mul(b)
        && let Some(value) = integer_value(product)
    {
        return Ok(value);
    }
    float(f64_of(n)? * f64_of(factor)?)
}

fn divide(n: &Number, divisor: &Number) -> Result<Value, String> {
    if let (Some(a), Some(b)) = (as_i128(n), as_i128(divisor))
        && b != 0
        && a % b == 0
        && let Some(value) = integer_value(a / b)
    {
        return Ok(value);
    }
    float(f64_of(n)? / f64_of(divisor)?)
}

fn integer_value(n: i128) -> Option<Value> {
    i64::try_from(n).map(Value::from).or_else(|_| u64::try_from(n).map(Value::from)).ok()
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn f64_of(n: &Number) -> Result<f64, String> {
    n.as_f64().ok_or_else(|| format!("{n} is not a number"))
}

/// Seconds (integer or fractional) to whole milliseconds.
fn seconds_to_ms(n: &Number) -> Result<i64, String> {
    if let Some(secs) = n.as_i64() {
        return secs.checked_mul(1000).ok_or_else(|| format!("{n} seconds is out of range"));
    }
    let f = f64_of(n)? * 1000.0;
    if f.is_finite() && f.abs() < 9.0e18 { Ok(f.round() as i64) } else { Err(format!("{n} seconds is out of range")) }
}

/// Parses an ISO 8601 / RFC 3339 date or date-time into unix milliseconds (see the docs page for
/// the accepted forms); a date-time without a zone is UTC.
fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |digits: &[u8]| -> Option<i64> {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut rest = &b[10..];
    let mut seconds = 0;
    let mut millis = 0;
    let mut offset = 0;
    if let Some((&sep, time)) = rest.split_first() {
        if !matches!(sep, b'T' | b't' | b' ') || time.len() < 5 || time[2] != b':' {
            return None;
        }
        let (h, mi) = (num(&time[0..2])?, num(&time[3..5])?);
        rest = &time[5..];
        let mut sec = 0;
        if let Some(after) = rest.strip_prefix(b":") {
            sec = num(after.get(0..2)?)?;
            rest = &after[2..];
            if let Some(frac) = rest.strip_prefix(b".").or_else(|| rest.strip_prefix(b",")) {
                let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                millis = frac[..n.min(3)].iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0'));
                for _ in n..3 {
                    millis *= 10;
                }
                rest = &frac[n..];
            }
        }
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        seconds = h * 3600 + mi * 60 + sec;
        offset = match rest {
            [] | [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), zone @ ..] => {
                let (oh, om) = match zone {
                    [_, _] => (num(zone)?, 0),
                    [_, _, _, _] => (num(&zone[0..2])?, num(&zone[2..4])?),
                    [_, _, b':', _, _] => (num(&zone[0..2])?, num(&zone[3..5])?),
                    _ => return None,
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                let secs = oh * 3600 + om * 60;
                if *sign == b'-' { -secs } else { secs }
            }
            _ => return None,
        };
    }
    Some((days_from_civil(y, m, d) * 86_400 + seconds - offset) * 1000 + millis)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for unix milliseconds in years 0000-9999.
fn format_rfc3339(ms: i64) -> Option<String> {
    const FIRST: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const END: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    (FIRST..END).contains(&ms).then(|| patchbay_core::timefmt::rfc3339(ms))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message: its JSON text, shortened.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => show_str(s),
        other => shorten(other.to_string()),
    }
}

fn show_str(s: &str) -> String {
    shorten(Value::String(s.to_owned()).to_string())
}

fn shorten(mut text: String) -> String {
    const MAX_CHARS: usize = 60;
    if let Some((at, _)) = text.char_indices().nth(MAX_CHARS) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(json: Value) -> Mapping {
        Mapping::parse(&json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(json: Value) -> String {
        match Mapping::parse(&json) {
            Ok(m) => panic!("parsed: {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Applies one field `{"target": "out", "source": "in", "transform": [transform]}` to `{"in": input}`.
    fn one(transform: Value, input: Value) -> Result<Value, String> {
        let m = mapping(json!({"fields": [{"target": "out", "source": "in", "transform": [transform]}]}));
        m.apply(&json!({ "in": input })).map(|out| out.get("out").cloned().unwrap_or(json!("<omitted>")))
    }

    fn ok(transform: Value, input: Value) -> Value {
        one(transform.clone(), input.clone()).unwrap_or_else(|e| panic!("{transform} on {input}: {e}"))
    }

    fn bad(transform: Value, input: Value) -> String {
        match one(transform.clone(), input.clone()) {
            Ok(v) => panic!("{transform} on {input} gave {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_documented_example() {
        let m = mapping(json!({
            "keep_unmapped": false,
            "fields": [
                {"target": "title", "source": "name"},
                {"target": "price_cents", "source": "variants.0.price", "transform": ["number", {"multiply": 100}, "round"]},
                {"target": "vendor", "source": "vendor", "transform": ["trim", "lowercase"], "default": "unknown"},
                {"target": "origin", "constant": "shopify"},
                {"target": "meta.sku", "source": "sku"}
            ]
        }));
        let record = json!({
            "name": "Blue mug", "vendor": "  ACME ", "sku": "MUG-1", "id": 7,
            "variants": [{"price": "19.99"}, {"price": "24.99"}]
        });
        assert_eq!(
            m.apply(&record).unwrap(),
            json!({"title": "Blue mug", "price_cents": 1999, "vendor": "acme", "origin": "shopify", "meta": {"sku": "MUG-1"}})
        );
        assert!(m.apply(&record).unwrap()["price_cents"].is_i64());
        // Missing vendor: the default; missing name and sku: left out.
        assert_eq!(
            m.apply(&json!({"variants": [{"price": 5}]})).unwrap(),
            json!({"price_cents": 500, "vendor": "unknown", "origin": "shopify"})
        );
        assert_eq!(
            m.apply(&json!({"variants": [{"price": "abc"}]})).unwrap_err(),
            "price_cents: \"abc\" is not a number (transform number)"
        );
        assert_eq!(m.len(), 5);
        assert!(!m.is_empty());
        assert!(!m.keep_unmapped());
    }

    #[test]
    fn source_paths() {
        let m = mapping(json!({"fields": [
            {"target": "a", "source": "x.y.z"},
            {"target": "b", "source": "list.1"},
            {"target": "c", "source": "list.1.name"},
            {"target": "d", "source": "dotted\\.key"},
            {"target": "e", "source": "back\\\\slash"},
            {"target": "f", "source": "obj.0"},
            {"target": "g", "source": "list.01"},
            {"target": "h", "source": "list.9"},
            {"target": "i", "source": "x.y.z.deeper"},
            {"target": "j", "source": "list.-1"}
        ]}));
        let record = json!({
            "x": {"y": {"z": 1}},
            "list": [{"name": "first"}, {"name": "second"}],
            "dotted.key": "dk",
            "back\\slash": "bs",
            "obj": {"0": "zero"}
        });
        assert_eq!(
            m.apply(&record).unwrap(),
            json!({"a": 1, "b": {"name": "second"}, "c": "second", "d": "dk", "e": "bs", "f": "zero"})
        );
    }

    #[test]
    fn path_errors() {
        let err = |path: &str| parse_err(json!({"fields": [{"target": "t", "source": path}]}));
        assert_eq!(err(""), "fields[0].source: empty path");
        assert_eq!(err("a..b"), "fields[0].source: path \"a..b\" has an empty segment");
        assert_eq!(err(".a"), "fields[0].source: path \".a\" has an empty segment");
        assert_eq!(err("a."), "fields[0].source: path \"a.\" has an empty segment");
        assert_eq!(
            err("a\\x"),
            "fields[0].source: path \"a\\x\": unknown escape \"\\x\" (only \\. and \\\\ are escapes)"
        );
        assert_eq!(err("a\\"), "fields[0].source: path \"a\\\" ends with a lone backslash");
        assert_eq!(parse_err(json!({"fields": [{"target": "", "constant": 1}]})), "fields[0].target: empty path");
        assert_eq!(
            parse_err(json!({"fields": [{"target": "a.", "constant": 1}]})),
            "fields[0].target: path \"a.\" has an empty segment"
        );
    }

    #[test]
    fn nested_targets() {
        let m = mapping(json!({"fields": [
            {"target": "meta.sku", "source": "sku"},
            {"target": "id", "source": "id"},
            {"target": "meta.color", "source": "color"},
            {"target": "meta.dims.w", "source": "w"},
            {"target": "a\\.b", "constant": true},
            {"target": "list.0", "constant": "object key, not an index"}
        ]}));
        assert_eq!(
            m.apply(&json!({"sku": "S", "id": 1, "color": "red", "w": 3})).unwrap(),
            json!({"meta": {"sku": "S", "color": "red", "dims": {"w": 3}}, "id": 1, "a.b": true,
                   "list": {"0": "object key, not an index"}})
        );
        // Objects whose every target is left out are left out too.
        assert_eq!(
            m.apply(&json!({"id": 1})).unwrap(),
            json!({"id": 1, "a.b": true, "list": {"0": "object key, not an index"}})
        );
    }

    #[test]
    fn keep_unmapped() {
        let m = mapping(json!({"keep_unmapped": true, "fields": [
            {"target": "title", "source": "name"},
            {"target": "meta.sku", "source": "sku"},
            {"target": "flag.on", "constant": true},
            {"target": "extra", "constant": 1},
            {"target": "kept", "source": "absent"}
        ]}));
        let record =
            json!({"name": "N", "sku": "S", "meta": {"old": 1}, "flag": "not an object", "kept": "as is", "n": [1]});
        assert_eq!(
            m.apply(&record).unwrap(),
            json!({"name": "N", "title": "N", "sku": "S", "meta": {"old": 1, "sku": "S"}, "flag": {"on": true},
                   "extra": 1, "kept": "as is", "n": [1]})
        );
        // Without fields, a copy.
        let copy = mapping(json!({"keep_unmapped": true}));
        assert!(copy.is_empty());
        assert_eq!(copy.apply(&record).unwrap(), record);
        // Without keep_unmapped and fields, an empty object.
        assert_eq!(mapping(json!({})).apply(&record).unwrap(), json!({}));
    }

    #[test]
    fn missing_null_default_required() {
        let m = mapping(json!({"fields": [
            {"target": "plain", "source": "v"},
            {"target": "defaulted", "source": "v", "default": "d"},
            {"target": "null_default", "source": "v", "default": null},
            {"target": "emptied", "source": "v", "transform": ["trim", "null_if_empty"], "default": "was empty"},
            {"target": "chain", "source": "v", "transform": [{"default": "x"}, "uppercase"]}
        ]}));
        assert_eq!(
            m.apply(&json!({})).unwrap(),
            json!({"defaulted": "d", "null_default": null, "emptied": "was empty", "chain": "X"})
        );
        assert_eq!(
            m.apply(&json!({"v": null})).unwrap(),
            json!({"plain": null, "defaulted": "d", "null_default": null, "emptied": "was empty", "chain": "X"})
        );
        assert_eq!(
            m.apply(&json!({"v": "  "})).unwrap(),
            json!({"plain": "  ", "defaulted": "  ", "null_default": "  ", "emptied": "was empty", "chain": "  "})
        );
        assert_eq!(
            m.apply(&json!({"v": " a "})).unwrap(),
            json!({"plain": " a ", "defaulted": " a ", "null_default": " a ", "emptied": "a", "chain": " A "})
        );

        let req = mapping(json!({"fields": [{"target": "id", "source": "ids.0", "required": true}]}));
        assert_eq!(req.apply(&json!({"ids": [5]})).unwrap(), json!({"id": 5}));
        assert_eq!(req.apply(&json!({"ids": []})).unwrap_err(), "id: required value is missing (source \"ids.0\")");
        assert_eq!(req.apply(&json!({"ids": [null]})).unwrap_err(), "id: required value is null (source \"ids.0\")");
        let req_false = mapping(json!({"fields": [{"target": "id", "source": "id", "required": false}]}));
        assert_eq!(req_false.apply(&json!({})).unwrap(), json!({}));
    }

    #[test]
    fn constants() {
        let m = mapping(json!({"fields": [
            {"target": "s", "constant": "shopify"},
            {"target": "n", "constant": null},
            {"target": "o", "constant": {"a": [1, 2]}}
        ]}));
        assert_eq!(m.apply(&json!({"s": "ignored"})).unwrap(), json!({"s": "shopify", "n": null, "o": {"a": [1, 2]}}));
    }

    #[test]
    fn non_object_records_are_item_errors() {
        let m = mapping(json!({"fields": []}));
        assert_eq!(m.apply(&json!([1])).unwrap_err(), "the record is an array, not an object");
        assert_eq!(m.apply(&json!("x")).unwrap_err(), "the record is a string, not an object");
        assert_eq!(m.apply(&Value::Null).unwrap_err(), "the record is null, not an object");
    }

    #[test]
    fn string_transforms() {
        assert_eq!(ok(json!("trim"), json!("  a b \t\n")), json!("a b"));
        assert_eq!(ok(json!("trim"), json!("ab")), json!("ab"));
        assert_eq!(bad(json!("trim"), json!(5)), "out: 5 is not a string (transform trim)");
        assert_eq!(ok(json!("lowercase"), json!("AbC")), json!("abc"));
        assert_eq!(ok(json!("lowercase"), json!("ÄBÇ")), json!("äbç"));
        assert_eq!(bad(json!("lowercase"), json!(true)), "out: true is not a string (transform lowercase)");
        assert_eq!(ok(json!("uppercase"), json!("straße")), json!("STRASSE"));
        assert_eq!(ok(json!("uppercase"), json!("abc")), json!("ABC"));
        assert_eq!(bad(json!("uppercase"), json!({"a": 1})), "out: {\"a\":1} is not a string (transform uppercase)");
        assert_eq!(ok(json!({"replace": ["-", "_"]}), json!("a-b-c")), json!("a_b_c"));
        assert_eq!(ok(json!({"replace": ["x", ""]}), json!("abc")), json!("abc"));
        assert_eq!(bad(json!({"replace": ["-", "_"]}), json!(1)), "out: 1 is not a string (transform replace)");
        assert_eq!(ok(json!({"prefix": "sku-"}), json!("1")), json!("sku-1"));
        assert_eq!(bad(json!({"prefix": "sku-"}), json!(1)), "out: 1 is not a string (transform prefix)");
        assert_eq!(ok(json!({"suffix": "!"}), json!("hi")), json!("hi!"));
        assert_eq!(bad(json!({"suffix": "!"}), json!(false)), "out: false is not a string (transform suffix)");
        assert_eq!(ok(json!({"truncate": 2}), json!("héllo")), json!("hé"));
        assert_eq!(ok(json!({"truncate": 10}), json!("héllo")), json!("héllo"));
        assert_eq!(ok(json!({"truncate": 0}), json!("héllo")), json!(""));
        assert_eq!(bad(json!({"truncate": 2}), json!(12345)), "out: 12345 is not a string (transform truncate)");
        // Long values are shortened in messages.
        let long = "x".repeat(100);
        let msg = bad(json!("number"), json!(long));
        assert!(msg.starts_with("out: \"xxxx") && msg.contains("x… is not a number"), "{msg}");
    }

    #[test]
    fn string_transform() {
        assert_eq!(ok(json!("string"), json!(42)), json!("42"));
        assert_eq!(ok(json!("string"), json!(-4.5)), json!("-4.5"));
        assert_eq!(ok(json!("string"), json!(true)), json!("true"));
        assert_eq!(ok(json!("string"), json!("s")), json!("s"));
        assert_eq!(ok(json!("string"), json!(null)), json!(null));
        assert_eq!(bad(json!("string"), json!({"a": 1})), "out: {\"a\":1} is not a scalar (transform string)");
        assert_eq!(bad(json!("string"), json!([[1]])), "out: element 0: [1] is not a scalar (transform string)");
    }

    #[test]
    fn number_transforms() {
        assert_eq!(ok(json!("number"), json!("42")), json!(42));
        assert!(ok(json!("number"), json!("42")).is_i64());
        assert_eq!(ok(json!("number"), json!(" -4.25 ")), json!(-4.25));
        assert_eq!(ok(json!("number"), json!("1e3")), json!(1000.0));
        assert_eq!(ok(json!("number"), json!("18446744073709551615")), json!(u64::MAX));
        assert_eq!(ok(json!("number"), json!(7)), json!(7));
        assert_eq!(ok(json!("number"), json!(7.5)), json!(7.5));
        assert_eq!(bad(json!("number"), json!("abc")), "out: \"abc\" is not a number (transform number)");
        assert_eq!(bad(json!("number"), json!("")), "out: \"\" is not a number (transform number)");
        assert_eq!(bad(json!("number"), json!("NaN")), "out: \"NaN\" is not a number (transform number)");
        assert_eq!(bad(json!("number"), json!("inf")), "out: \"inf\" is not a number (transform number)");
        assert_eq!(bad(json!("number"), json!("1e999")), "out: \"1e999\" is not a number (transform number)");
        assert_eq!(bad(json!("number"), json!(true)), "out: true is not a number (transform number)");

        assert_eq!(ok(json!("integer"), json!("42")), json!(42));
        assert_eq!(ok(json!("integer"), json!(" -42 ")), json!(-42));
        assert_eq!(ok(json!("integer"), json!(4.0)), json!(4));
        assert!(ok(json!("integer"), json!(4.0)).is_i64());
        assert_eq!(ok(json!("integer"), json!("4.0")), json!(4));
        assert_eq!(ok(json!("integer"), json!(9)), json!(9));
        assert_eq!(bad(json!("integer"), json!(4.5)), "out: 4.5 is not a whole number (transform integer)");
        assert_eq!(bad(json!("integer"), json!("4.5")), "out: \"4.5\" is not a whole number (transform integer)");
        assert_eq!(bad(json!("integer"), json!("x")), "out: \"x\" is not an integer (transform integer)");
        assert_eq!(bad(json!("integer"), json!(1e300)), "out: 1e+300 is not a whole number (transform integer)");
        assert_eq!(bad(json!("integer"), json!({})), "out: {} is not an integer (transform integer)");
        assert_eq!(ok(json!("integer"), json!([])), json!([]));

        assert_eq!(ok(json!("round"), json!(4.5)), json!(5));
        assert!(ok(json!("round"), json!(4.5)).is_i64());
        assert_eq!(ok(json!("round"), json!(-4.5)), json!(-5));
        assert_eq!(ok(json!("round"), json!(4.49)), json!(4));
        assert_eq!(ok(json!("round"), json!(7)), json!(7));
        assert_eq!(ok(json!("round"), json!(1e300)), json!(1e300));
        assert_eq!(ok(json!({"round": 2}), json!(1.23456)), json!(1.23));
        assert_eq!(ok(json!({"round": 1}), json!(-0.25)), json!(-0.3));
        assert_eq!(ok(json!({"round": 0}), json!(2.5)), json!(3));
        assert_eq!(bad(json!("round"), json!("4.5")), "out: \"4.5\" is not a number (transform round)");

        assert_eq!(ok(json!({"multiply": 100}), json!(5)), json!(500));
        assert!(ok(json!({"multiply": 100}), json!(5)).is_i64());
        assert_eq!(ok(json!({"multiply": 2}), json!(1.5)), json!(3.0));
        assert_eq!(ok(json!({"multiply": -1}), json!(u64::MAX)), json!(-1.8446744073709552e19));
        assert_eq!(ok(json!({"multiply": 2}), json!(i64::MAX)), json!(18446744073709551614u64));
        assert_eq!(ok(json!({"multiply": 0.5}), json!(3)), json!(1.5));
        assert_eq!(
            bad(json!({"multiply": 1e300}), json!(1e300)),
            "out: the result is not a finite number (transform multiply)"
        );
        assert_eq!(bad(json!({"multiply": 2}), json!("2")), "out: \"2\" is not a number (transform multiply)");

        assert_eq!(ok(json!({"divide": 100}), json!(1999)), json!(19.99));
        assert_eq!(ok(json!({"divide": 100}), json!(2000)), json!(20));
        assert!(ok(json!({"divide": 100}), json!(2000)).is_i64());
        assert_eq!(ok(json!({"divide": 0.5}), json!(2)), json!(4.0));
        // `null` passes through every transform but `default`.
        assert_eq!(ok(json!({"divide": 2}), json!(null)), json!(null));
        assert_eq!(ok(json!("number"), json!(null)), json!(null));
    }

    #[test]
    fn boolean_transform() {
        for (input, expected) in [
            (json!(true), true),
            (json!(false), false),
            (json!("true"), true),
            (json!("FALSE"), false),
            (json!(" Yes "), true),
            (json!("no"), false),
            (json!("1"), true),
            (json!("0"), false),
            (json!(1), true),
            (json!(0), false),
            (json!(1.0), true),
        ] {
            assert_eq!(ok(json!("boolean"), input.clone()), json!(expected), "{input}");
        }
        assert_eq!(bad(json!("boolean"), json!("maybe")), "out: \"maybe\" is not a boolean (transform boolean)");
        assert_eq!(bad(json!("boolean"), json!(2)), "out: 2 is not a boolean (transform boolean)");
        assert_eq!(bad(json!("boolean"), json!({})), "out: {} is not a boolean (transform boolean)");
    }

    #[test]
    fn array_transforms() {
        assert_eq!(ok(json!({"split": ","}), json!("a,b,,c")), json!(["a", "b", "", "c"]));
        assert_eq!(ok(json!({"split": ", "}), json!("a")), json!(["a"]));
        assert_eq!(bad(json!({"split": ","}), json!(12)), "out: 12 is not a string (transform split)");
        assert_eq!(bad(json!({"split": ","}), json!(["a"])), "out: [\"a\"] is not a string (transform split)");
        assert_eq!(ok(json!({"join": ", "}), json!(["a", 1, true, null, 2.5])), json!("a, 1, true, 2.5"));
        assert_eq!(ok(json!({"join": ""}), json!([])), json!(""));
        assert_eq!(bad(json!({"join": ","}), json!("a,b")), "out: \"a,b\" is not an array (transform join)");
        assert_eq!(
            bad(json!({"join": ","}), json!(["a", {"b": 1}])),
            "out: element 1: {\"b\":1} is not a scalar (transform join)"
        );

        // Other transforms apply to each element.
        let m = mapping(json!({"fields": [
            {"target": "tags", "source": "tags", "transform": [{"split": ","}, "trim", "lowercase", "null_if_empty"]},
            {"target": "nums", "source": "nums", "transform": ["number", {"multiply": 2}]}
        ]}));
        assert_eq!(
            m.apply(&json!({"tags": " A, b ,C", "nums": ["1", 2.5, null]})).unwrap(),
            json!({"tags": ["a", "b", "c"], "nums": [2, 5.0, null]})
        );
        assert_eq!(
            m.apply(&json!({"tags": "a", "nums": ["1", "x"]})).unwrap_err(),
            "nums: element 1: \"x\" is not a number (transform number)"
        );
    }

    #[test]
    fn null_if_empty_and_default() {
        assert_eq!(ok(json!("null_if_empty"), json!("")), json!(null));
        assert_eq!(ok(json!("null_if_empty"), json!([])), json!(null));
        assert_eq!(ok(json!("null_if_empty"), json!({})), json!(null));
        assert_eq!(ok(json!("null_if_empty"), json!(" ")), json!(" "));
        assert_eq!(ok(json!("null_if_empty"), json!(0)), json!(0));
        assert_eq!(ok(json!({"default": "d"}), json!(null)), json!("d"));
        assert_eq!(ok(json!({"default": "d"}), json!("x")), json!("x"));
        // A missing value reaches the default transform too.
        let m = mapping(json!({"fields": [{"target": "out", "source": "in", "transform": [{"default": 0}]}]}));
        assert_eq!(m.apply(&json!({})).unwrap(), json!({"out": 0}));
    }

    #[test]
    fn map_transform() {
        let table = json!({"map": {"a": "x", "b": "y", "1": "one", "true": "yes"}});
        assert_eq!(ok(table.clone(), json!("a")), json!("x"));
        assert_eq!(ok(table.clone(), json!("zzz")), json!("zzz"));
        assert_eq!(ok(table.clone(), json!(1)), json!("one"));
        assert_eq!(ok(table.clone(), json!(true)), json!("yes"));
        assert_eq!(ok(table.clone(), json!(["a", "b", "c"])), json!(["x", "y", "c"]));
        let with_else = json!({"map": {"active": true}, "else": false});
        assert_eq!(ok(with_else.clone(), json!("active")), json!(true));
        assert_eq!(ok(with_else.clone(), json!("archived")), json!(false));
        assert_eq!(ok(with_else, json!({"o": 1})), json!(false));
    }

    #[test]
    fn timestamp_ms_transform() {
        let cases = [
            ("2024-02-29T12:00:00Z", 1_709_208_000_000i64),
            ("2024-02-29T12:00:00.5Z", 1_709_208_000_500),
            ("2024-02-29T12:00:00,123456789z", 1_709_208_000_123),
            ("2024-02-29T13:00:00+01:00", 1_709_208_000_000),
            ("2024-02-29T13:30:00+0130", 1_709_208_000_000),
            ("2024-02-29T10:00:00-02", 1_709_208_000_000),
            ("2024-02-29t12:00:00", 1_709_208_000_000),
            ("2024-02-29 12:00", 1_709_208_000_000),
            (" 2024-02-29T12:00Z ", 1_709_208_000_000),
            ("2024-02-29", 1_709_164_800_000),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.999Z", -1),
        ];
        for (text, ms) in cases {
            assert_eq!(ok(json!("timestamp_ms"), json!(text)), json!(ms), "{text}");
        }
        // Agrees with the host's RFC 3339 parser.
        let text = "2031-07-04T05:06:07.089+05:30";
        assert_eq!(ok(json!("timestamp_ms"), json!(text)), json!(patchbay_core::timefmt::parse_rfc3339(text).unwrap()));
        assert_eq!(ok(json!("timestamp_ms"), json!(1_700_000_000)), json!(1_700_000_000_000i64));
        assert_eq!(ok(json!("timestamp_ms"), json!(1.5)), json!(1500));
        assert_eq!(ok(json!("timestamp_ms"), json!(-1)), json!(-1000));
        for text in [
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-01-01T24:00:00Z",
            "2024-01-01T12:60Z",
            "2024-01-01T12:00:00+24:00",
            "2024-01-01T12:00:00+01:0",
            "2024-01-01T12:00:00.Z",
            "2024-01-01T12",
            "2024-01-01X12:00",
            "24-01-01",
            "2024-1-01",
            "1700000000",
        ] {
            assert_eq!(
                bad(json!("timestamp_ms"), json!(text)),
                format!("out: {} is not an ISO 8601 date-time (transform timestamp_ms)", json!(text)),
                "{text}"
            );
        }
        assert_eq!(
            bad(json!("timestamp_ms"), json!(true)),
            "out: true is not a date-time or a number of seconds (transform timestamp_ms)"
        );
        assert_eq!(
            bad(json!("timestamp_ms"), json!(1e300)),
            "out: 1e+300 seconds is out of range (transform timestamp_ms)"
        );
    }

    #[test]
    fn iso8601_transform() {
        assert_eq!(ok(json!("iso8601"), json!(0)), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(ok(json!("iso8601"), json!(1_709_208_000_123i64)), json!("2024-02-29T12:00:00.123Z"));
        assert_eq!(ok(json!("iso8601"), json!(-1)), json!("1969-12-31T23:59:59.999Z"));
        assert_eq!(ok(json!("iso8601"), json!(1.6)), json!("1970-01-01T00:00:00.002Z"));
        assert_eq!(ok(json!("iso8601"), json!("2024-02-29T13:00:00+01:00")), json!("2024-02-29T12:00:00.000Z"));
        assert_eq!(ok(json!("iso8601"), json!(253_402_300_799_999i64)), json!("9999-12-31T23:59:59.999Z"));
        assert_eq!(
            bad(json!("iso8601"), json!(253_402_300_800_000i64)),
            "out: 253402300800000 is out of the range of dates (years 0000-9999) (transform iso8601)"
        );
        assert_eq!(
            bad(json!("iso8601"), json!(u64::MAX)),
            "out: 18446744073709551615 is out of the range of dates (years 0000-9999) (transform iso8601)"
        );
        assert_eq!(
            bad(json!("iso8601"), json!("soon")),
            "out: \"soon\" is not an ISO 8601 date-time (transform iso8601)"
        );
        assert_eq!(
            bad(json!("iso8601"), json!(false)),
            "out: false is not a number of milliseconds (transform iso8601)"
        );
        // Round trip through both.
        let m = mapping(json!({"fields": [{"target": "t", "source": "t", "transform": ["timestamp_ms", "iso8601"]}]}));
        assert_eq!(m.apply(&json!({"t": "2024-02-29"})).unwrap(), json!({"t": "2024-02-29T00:00:00.000Z"}));
    }

    #[test]
    fn validation_messages() {
        let field_err = |field: Value| parse_err(json!({ "fields": [{"target": "ok", "constant": 1}, field] }));
        assert_eq!(parse_err(json!([])), "expected an object, got an array");
        assert_eq!(
            parse_err(json!({"keep_unmapped": true, "feilds": []})),
            "unknown key \"feilds\"; expected one of keep_unmapped, fields"
        );
        assert_eq!(parse_err(json!({"keep_unmapped": "yes"})), "keep_unmapped: expected a boolean, got a string");
        assert_eq!(parse_err(json!({"fields": {}})), "fields: expected an array, got an object");
        assert_eq!(field_err(json!("title")), "fields[1]: expected an object, got a string");
        assert_eq!(
            field_err(json!({"target": "t", "sorce": "s"})),
            "fields[1]: unknown key \"sorce\"; expected one of target, source, constant, transform, default, required"
        );
        assert_eq!(field_err(json!({"source": "s"})), "fields[1]: \"target\" is missing");
        assert_eq!(field_err(json!({"target": 5, "source": "s"})), "fields[1].target: expected a string, got a number");
        assert_eq!(field_err(json!({"target": "t"})), "fields[1]: give either \"source\" or \"constant\"");
        assert_eq!(
            field_err(json!({"target": "t", "source": "s", "constant": 1})),
            "fields[1]: give either \"source\" or \"constant\", not both"
        );
        assert_eq!(
            field_err(json!({"target": "t", "source": ["s"]})),
            "fields[1].source: expected a string, got an array"
        );
        assert_eq!(
            field_err(json!({"target": "t", "constant": 1, "transform": ["trim"]})),
            "fields[1]: \"transform\" applies only to a \"source\", not a \"constant\""
        );
        assert_eq!(
            field_err(json!({"target": "t", "constant": 1, "default": 2})),
            "fields[1]: \"default\" applies only to a \"source\", not a \"constant\""
        );
        assert_eq!(
            field_err(json!({"target": "t", "source": "s", "required": true, "default": 2})),
            "fields[1]: \"required\": true and \"default\" exclude each other"
        );
        assert_eq!(
            field_err(json!({"target": "t", "source": "s", "required": "yes"})),
            "fields[1].required: expected a boolean, got a string"
        );
        assert_eq!(
            field_err(json!({"target": "t", "source": "s", "transform": "trim"})),
            "fields[1].transform: expected an array of transforms, got a string"
        );
    }

    #[test]
    fn transform_validation_messages() {
        let err = |t: Value| parse_err(json!({"fields": [{"target": "t", "source": "s", "transform": ["trim", t]}]}));
        assert_eq!(
            err(json!("lowercse")),
            format!("fields[0].transform[1]: unknown transform \"lowercse\"; expected one of {TRANSFORM_NAMES}")
        );
        assert!(err(json!("lowercse")).starts_with(
            "fields[0].transform[1]: unknown transform \"lowercse\"; expected one of trim, lowercase, uppercase,"
        ));
        assert!(err(json!({"frobnicate": 1})).contains("unknown transform \"frobnicate\""));
        assert_eq!(err(json!(5)), "fields[0].transform[1]: expected a transform name or object, got a number");
        assert_eq!(
            err(json!("multiply")),
            "fields[0].transform[1]: \"multiply\" needs a parameter: write it as {\"multiply\": 100}"
        );
        assert_eq!(
            err(json!({"trim": true})),
            "fields[0].transform[1]: \"trim\" takes no parameter: write it as \"trim\""
        );
        assert_eq!(
            err(json!({"prefix": "a", "suffix": "b"})),
            "fields[0].transform[1]: a transform object has exactly one key, the transform's name (plus \"else\" for map)"
        );
        assert_eq!(err(json!({})), err(json!({"prefix": "a", "suffix": "b"})));
        assert_eq!(
            err(json!({"multiply": "2"})),
            "fields[0].transform[1]: \"multiply\" expects a number, got a string"
        );
        assert_eq!(err(json!({"divide": 0})), "fields[0].transform[1]: \"divide\" by zero");
        assert_eq!(err(json!({"divide": 0.0})), "fields[0].transform[1]: \"divide\" by zero");
        assert_eq!(
            err(json!({"round": 16})),
            "fields[0].transform[1]: \"round\" expects a number of decimal places 0-15, got 16"
        );
        assert_eq!(
            err(json!({"round": -1})),
            "fields[0].transform[1]: \"round\" expects a number of decimal places 0-15, got -1"
        );
        assert_eq!(
            err(json!({"replace": ["a"]})),
            "fields[0].transform[1]: \"replace\" expects [from, to], two strings, got [\"a\"]"
        );
        assert_eq!(
            err(json!({"replace": ["", "x"]})),
            "fields[0].transform[1]: \"replace\" needs a non-empty string to replace"
        );
        assert_eq!(err(json!({"split": ""})), "fields[0].transform[1]: \"split\" needs a non-empty separator");
        assert_eq!(err(json!({"split": 1})), "fields[0].transform[1]: \"split\" expects a string, got a number");
        assert_eq!(err(json!({"join": null})), "fields[0].transform[1]: \"join\" expects a string, got null");
        assert_eq!(
            err(json!({"truncate": 1.5})),
            "fields[0].transform[1]: \"truncate\" expects a number of characters, got 1.5"
        );
        assert_eq!(err(json!({"map": []})), "fields[0].transform[1]: \"map\" expects an object, got an array");
        assert_eq!(
            err(json!({"map": {}, "otherwise": 1})),
            "fields[0].transform[1]: unknown key \"otherwise\" in a map transform; expected map, else"
        );
        assert!(err(json!({"else": 1})).contains("unknown transform \"else\""));
    }

    #[test]
    fn duplicate_and_conflicting_targets() {
        let err = |targets: &[&str]| {
            let fields: Vec<Value> = targets.iter().map(|t| json!({"target": t, "constant": 1})).collect();
            parse_err(json!({ "fields": fields }))
        };
        assert_eq!(err(&["a", "b", "a"]), "fields[2].target: duplicate target \"a\" (also fields[0])");
        assert_eq!(err(&["m.x", "m.x"]), "fields[1].target: duplicate target \"m.x\" (also fields[0])");
        assert_eq!(err(&["a", "a.b"]), "fields[1].target: target \"a.b\" conflicts with \"a\" of fields[0]");
        assert_eq!(err(&["a.b.c", "x", "a"]), "fields[2].target: target \"a\" conflicts with \"a.b.c\" of fields[0]");
        assert_eq!(
            err(&["a.b", "a.c", "a.b.d"]),
            "fields[2].target: target \"a.b.d\" conflicts with \"a.b\" of fields[0]"
        );
        // Escaped dots are part of the key: no conflict.
        assert!(
            Mapping::parse(&json!({"fields": [
                {"target": "a", "constant": 1}, {"target": "a\\.b", "constant": 2}
            ]}))
            .is_ok()
        );
    }

    #[test]
    fn field_limit() {
        let fields =
            |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"target": format!("f{i}"), "constant": i})).collect() };
        assert_eq!(mapping(json!({ "fields": fields(MAX_FIELDS) })).len(), MAX_FIELDS);
        assert_eq!(
            parse_err(json!({ "fields": fields(MAX_FIELDS + 1) })),
            "fields: 501 fields; at most 500 are allowed"
        );
    }

    #[test]
    fn to_json_round_trips() {
        let input = json!({"fields": [
            {"target": "title", "source": "name"},
            {"target": "price", "source": "variants.0.price", "transform": ["number", {"multiply": 100}, {"round": 0}, {"divide": 2.5}]},
            {"target": "vendor", "source": "vendor", "transform": ["trim", "lowercase", "uppercase"], "default": "unknown"},
            {"target": "origin", "constant": {"x": [1, null]}},
            {"target": "meta.sku", "source": "sku\\.x", "required": true},
            {"target": "meta.n", "source": "n", "required": false, "transform": []},
            {"target": "nil", "source": "nil", "default": null},
            {"target": "t", "source": "t", "transform": [
                "string", "integer", "boolean", {"round": 3}, {"replace": ["a", "b"]}, {"split": ","}, {"join": ";"},
                {"prefix": "p"}, {"suffix": "s"}, {"truncate": 9}, "null_if_empty", {"default": [1]},
                {"map": {"a": 1}}, {"map": {"b": 2}, "else": null}, "timestamp_ms", "iso8601"
            ]}
        ]});
        let m = mapping(input);
        let normalized = m.to_json();
        assert_eq!(normalized["keep_unmapped"], json!(false));
        assert_eq!(
            normalized["fields"][1]["transform"],
            json!(["number", {"multiply": 100}, "round", {"divide": 2.5}])
        );
        assert_eq!(normalized["fields"][5], json!({"target": "meta.n", "source": "n"}));
        assert_eq!(normalized["fields"][6], json!({"target": "nil", "source": "nil", "default": null}));
        assert_eq!(normalized["fields"][4], json!({"target": "meta.sku", "source": "sku\\.x", "required": true}));
        let again = mapping(normalized.clone());
        assert_eq!(again, m);
        assert_eq!(again.to_json(), normalized);

        // Through serde, as a store would.
        let text = serde_json::to_string(&m).unwrap();
        let back: Mapping = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        let bad = serde_json::from_str::<Mapping>("{\"fields\": [{\"target\": \"\"}]}").unwrap_err();
        assert!(bad.to_string().contains("fields[0].target: empty path"), "{bad}");
    }

    #[test]
    fn micro_benchmark() {
        let m = mapping(json!({"fields": [
            {"target": "id", "source": "id", "required": true},
            {"target": "title", "source": "name", "transform": ["trim"]},
            {"target": "price_cents", "source": "variants.0.price", "transform": ["number", {"multiply": 100}, "round"]},
            {"target": "vendor", "source": "vendor", "transform": ["trim", "lowercase"], "default": "unknown"},
            {"target": "origin", "constant": "shopify"},
            {"target": "meta.sku", "source": "sku"},
            {"target": "meta.updated", "source": "updated_at", "transform": ["timestamp_ms"]}
        ]}));
        let record = json!({
            "id": 12345, "name": " Blue mug ", "vendor": "ACME", "sku": "MUG-1",
            "updated_at": "2024-02-29T12:00:00Z", "variants": [{"price": "19.99"}], "body": "x".repeat(200)
        });
        let n = 20_000u32;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(m.apply(std::hint::black_box(&record)).unwrap());
        }
        let per = start.elapsed().as_nanos() / u128::from(n);
        let build = if cfg!(debug_assertions) { "debug" } else { "optimized" };
        println!("mapping::apply: {per} ns/record (7 fields, {build} build)");
    }
}
