//! Reading a few fields out of JSON records without building a `Value` of the whole record.
//!
//! Data-sync connectors pass each record on byte for byte (`source-record.data` is JSON text),
//! and only need its primary key and perhaps a cursor or deleted field. Parsing the page into
//! borrowed [`RawValue`]s and picking just those fields ([`pick`], [`FieldSet`]) avoids
//! re-serialising every record and allocating its members — the difference matters at
//! 100 000 records per second.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A dotted path into a JSON document (`data.items`, `meta.next_cursor`); the empty path is the
/// document itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(Vec<String>);

impl Path {
    /// Parses `a.b.c`; surrounding whitespace is ignored, and an empty string is the root.
    pub fn parse(dotted: &str) -> Path {
        let dotted = dotted.trim();
        if dotted.is_empty() {
            return Path(Vec::new());
        }
        Path(dotted.split('.').map(|s| s.trim().to_owned()).collect())
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path's segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// The members named `keys` of the JSON object `raw`, borrowed, in the order of `keys`
/// (`None` where absent). Other members are skipped without being materialised. Not an object:
/// an error.
pub fn pick<'a>(raw: &'a RawValue, keys: &[&str]) -> Result<Vec<Option<&'a RawValue>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let picked = PickSeed { keys }.deserialize(&mut de)?;
    Ok(picked)
}

/// The value at `path` inside `raw`; `Ok(None)` when a segment is missing or a parent is not an
/// object.
pub fn lookup<'a>(raw: &'a RawValue, path: &Path) -> Result<Option<&'a RawValue>, serde_json::Error> {
    let mut current = raw;
    for segment in path.segments() {
        if !is_object(current) {
            return Ok(None);
        }
        match pick(current, &[segment.as_str()])?.pop().flatten() {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// Whether `raw` is a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// Whether `raw` is JSON `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

/// A scalar as key text: strings as they are, numbers as written, booleans as `true`/`false`;
/// `None` for null, objects and arrays.
pub fn scalar_text(raw: &RawValue) -> Option<String> {
    let text = raw.get().trim();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(text).ok(),
        b'-' | b'0'..=b'9' => Some(text.to_owned()),
        b't' | b'f' => Some(text.to_owned()),
        _ => None,
    }
}

/// Whether `raw` is `true` or the string `"true"` (any case).
pub fn is_truthy(raw: &RawValue) -> bool {
    let text = raw.get().trim();
    text == "true" || (text.starts_with('"') && scalar_text(raw).is_some_and(|s| s.eq_ignore_ascii_case("true")))
}

/// `raw` as a [`Value`] (for small values such as a cursor field).
pub fn to_value(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// What [`capture`] found: per requested path, the value (or the list's elements).
#[derive(Debug, Default)]
pub struct Captured<'a> {
    /// For each path requested as a value: the raw value there.
    pub values: Vec<Option<&'a RawValue>>,
    /// For each path requested as a list: its elements (`Some(vec![])` for an explicit `null`).
    pub lists: Vec<Option<Vec<&'a RawValue>>>,
}

/// One pass over a whole document (a response page), picking the raw value at each of `values`
/// and the elements of the array at each of `lists`; everything else is skipped without being
/// materialised. A list path that holds something other than an array (or `null`) is an error.
pub fn capture<'a>(text: &'a str, values: &[&Path], lists: &[&Path]) -> Result<Captured<'a>, serde_json::Error> {
    let mut out = Captured { values: vec![None; values.len()], lists: vec![None; lists.len()] };
    let wanted: Vec<(&[String], Slot)> = values
        .iter()
        .enumerate()
        .map(|(i, p)| (p.segments(), Slot::Value(i)))
        .chain(lists.iter().enumerate().map(|(i, p)| (p.segments(), Slot::List(i))))
        .collect();
    let mut de = serde_json::Deserializer::from_str(text);
    Node { wanted, out: &mut out }.deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Value(usize),
    List(usize),
}

/// A node of the document with the paths still wanted below it.
struct Node<'w, 'o, 'a> {
    wanted: Vec<(&'w [String], Slot)>,
    out: &'o mut Captured<'a>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let here = self.wanted.iter().find(|(rest, _)| rest.is_empty()).map(|(_, slot)| *slot);
        match here {
            Some(Slot::List(i)) => {
                let list = Option::<Vec<&'de RawValue>>::deserialize(deserializer)?;
                self.out.lists[i] = Some(list.unwrap_or_default());
                Ok(())
            }
            Some(Slot::Value(i)) => {
                self.out.values[i] = Some(<&'de RawValue>::deserialize(deserializer)?);
                Ok(())
            }
            None if self.wanted.is_empty() => {
                IgnoredAny::deserialize(deserializer)?;
                Ok(())
            }
            None => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let below: Vec<(&[String], Slot)> = self
                .wanted
                .iter()
                .filter(|(rest, _)| rest.first().is_some_and(|head| *head == *key))
                .map(|(rest, slot)| (&rest[1..], *slot))
                .collect();
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(Node { wanted: below, out: &mut *self.out })?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A fixed set of dotted paths read from many records in one pass over each record's top-level
/// members (deeper segments are read from the member only).
#[derive(Debug, Clone, Default)]
pub struct FieldSet {
    paths: Vec<Path>,
    /// Distinct first segments, and for each path the index of its first segment in `heads`.
    heads: Vec<String>,
    head_of: Vec<usize>,
}

impl FieldSet {
    /// A set reading `paths` (root paths are not allowed and read as absent).
    pub fn new(paths: Vec<Path>) -> FieldSet {
        let mut heads: Vec<String> = Vec::new();
        let mut head_of = Vec::with_capacity(paths.len());
        for path in &paths {
            let head = path.segments().first().cloned().unwrap_or_default();
            let index = match heads.iter().position(|h| *h == head) {
                Some(i) => i,
                None => {
                    heads.push(head);
                    heads.len() - 1
                }
            };
            head_of.push(index);
        }
        FieldSet { paths, heads, head_of }
    }

    /// The values of the set's paths in `record`, in the order given to [`FieldSet::new`].
    /// A record that is not an object is an error.
    pub fn read<'a>(&self, record: &'a RawValue) -> Result<Vec<Option<&'a RawValue>>, String> {
        if !is_object(record) {
            return Err("the record is not a JSON object".to_owned());
        }
        let keys: Vec<&str> = self.heads.iter().map(String::as_str).collect();
        let heads = pick(record, &keys).map_err(|e| format!("the record is not valid JSON: {e}"))?;
        let mut out = Vec::with_capacity(self.paths.len());
        for (path, &head) in self.paths.iter().zip(&self.head_of) {
            let value = match (heads[head], path.segments()) {
                (Some(v), [_]) => Some(v),
                (Some(v), [_, rest @ ..]) => {
                    let rest = Path(rest.to_vec());
                    lookup(v, &rest).map_err(|e| format!("the record is not valid JSON: {e}"))?
                }
                _ => None,
            };
            out.push(value);
        }
        Ok(out)
    }
}

/// Primary-key fields (`id`, or `tenant,id` for a compound key), possibly dotted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKey {
    pub paths: Vec<Path>,
}

impl PrimaryKey {
    /// Parses a comma-separated list of dotted paths; empty parts are ignored, and an empty list
    /// is `id`.
    pub fn parse(spec: &str) -> PrimaryKey {
        let mut paths: Vec<Path> = spec.split(',').map(Path::parse).filter(|p| !p.is_root()).collect();
        if paths.is_empty() {
            paths.push(Path::parse("id"));
        }
        PrimaryKey { paths }
    }

    /// The field names as the `entity.primary-key` list shows them.
    pub fn names(&self) -> Vec<String> {
        self.paths.iter().map(ToString::to_string).collect()
    }

    /// The external id from the values of the key's paths (as read by a [`FieldSet`] built
    /// from [`PrimaryKey::paths`]): parts joined with `/`. A missing, null or non-scalar part, or
    /// an empty string, is an error naming the field.
    pub fn join(&self, values: &[Option<&RawValue>]) -> Result<String, String> {
        let mut id = String::new();
        for (i, (path, value)) in self.paths.iter().zip(values).enumerate() {
            let part = match value {
                None => return Err(format!("no primary key field `{path}`")),
                Some(v) if is_null(v) => return Err(format!("primary key field `{path}` is null")),
                Some(v) => scalar_text(v).ok_or_else(|| format!("primary key field `{path}` is not a scalar"))?,
            };
            if part.is_empty() {
                return Err(format!("primary key field `{path}` is empty"));
            }
            if i > 0 {
                id.push('/');
            }
            id.push_str(&part);
        }
        Ok(id)
    }
}

struct PickSeed<'k> {
    keys: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for PickSeed<'_> {
    type Value = Vec<Option<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PickSeed<'_> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![None; self.keys.len()];
        while let Some(index) = map.next_key_seed(KeySeed { keys: self.keys })? {
            match index {
                Some(i) => out[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Matches an object key against the wanted keys without allocating (unless it has escapes).
struct KeySeed<'k> {
    keys: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.keys.iter().position(|k| *k == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn picks_members_and_skips_the_rest() {
        let r = raw(r#"{"a": 1, "big": {"x": [1, 2, {"y": "z"}]}, "b": "two", "c\u0041": true}"#);
        let got = pick(r, &["b", "a", "missing", "cA"]).expect("object");
        assert_eq!(got[0].map(RawValue::get), Some(r#""two""#));
        assert_eq!(got[1].map(RawValue::get), Some("1"));
        assert!(got[2].is_none());
        assert_eq!(got[3].map(RawValue::get), Some("true"));
        assert!(pick(raw("[1]"), &["a"]).is_err());
    }

    #[test]
    fn lookups_follow_dotted_paths() {
        let r = raw(r#"{"data": {"items": [1, 2]}, "meta": {"next": null}}"#);
        assert_eq!(lookup(r, &Path::parse("data.items")).expect("ok").map(RawValue::get), Some("[1, 2]"));
        assert_eq!(lookup(r, &Path::parse("")).expect("ok").map(RawValue::get), Some(r.get()));
        assert!(lookup(r, &Path::parse("data.items.x")).expect("ok").is_none());
        assert!(lookup(r, &Path::parse("nope.x")).expect("ok").is_none());
        assert!(is_null(lookup(r, &Path::parse("meta.next")).expect("ok").expect("present")));
    }

    #[test]
    fn primary_keys_simple_compound_and_dotted() {
        let key = PrimaryKey::parse("org.id, id");
        let fields = FieldSet::new(key.paths.clone());
        let r = raw(r#"{"id": 7, "org": {"id": "acme"}, "pad": "x"}"#);
        let values = fields.read(r).expect("object");
        assert_eq!(key.join(&values), Ok("acme/7".to_owned()));

        let r = raw(r#"{"id": 7}"#);
        let values = fields.read(r).expect("object");
        assert_eq!(key.join(&values), Err("no primary key field `org.id`".to_owned()));
        let single = PrimaryKey::parse("");
        assert_eq!(single.names(), vec!["id".to_owned()]);
        let fields = FieldSet::new(single.paths.clone());
        for (text, expected) in [
            (r#"{"id": "a/b"}"#, Ok("a/b".to_owned())),
            (r#"{"id": null}"#, Err("primary key field `id` is null".to_owned())),
            (r#"{"id": ""}"#, Err("primary key field `id` is empty".to_owned())),
            (r#"{"id": [1]}"#, Err("primary key field `id` is not a scalar".to_owned())),
        ] {
            assert_eq!(single.join(&fields.read(raw(text)).expect("object")), expected, "{text}");
        }
        assert!(fields.read(raw("3")).is_err());
    }

    #[test]
    fn capture_reads_lists_and_values_in_one_pass() {
        let text =
            r#"{"meta": {"next": "c2", "total": 3}, "data": {"items": [{"id": 1}, 2, [3]]}, "x": [1, {"y": 2}]}"#;
        let (items, next, total, missing) =
            (Path::parse("data.items"), Path::parse("meta.next"), Path::parse("meta.total"), Path::parse("x.y"));
        let got = capture(text, &[&next, &total, &missing], &[&items]).expect("valid");
        assert_eq!(got.values[0].map(RawValue::get), Some(r#""c2""#));
        assert_eq!(got.values[1].map(RawValue::get), Some("3"));
        assert!(got.values[2].is_none());
        let list: Vec<&str> = got.lists[0].as_ref().expect("list").iter().map(|r| r.get()).collect();
        assert_eq!(list, [r#"{"id": 1}"#, "2", "[3]"]);
        // The document itself as the list, a null list, a list that is not one, broken JSON.
        let root = capture("[1, 2]", &[], &[&Path::parse("")]).expect("valid");
        assert_eq!(root.lists[0].as_ref().map(Vec::len), Some(2));
        let null = capture(r#"{"data": null}"#, &[], &[&Path::parse("data")]).expect("ok");
        assert_eq!(null.lists[0].as_ref().map(Vec::len), Some(0));
        assert!(capture(r#"{"data": 5}"#, &[], &[&Path::parse("data")]).is_err());
        assert!(capture(r#"{"data": [1,"#, &[], &[&Path::parse("data")]).is_err());
        assert!(capture(r#"{"a": "\u00e9"} x"#, &[], &[]).is_err());
    }

    #[test]
    fn truthiness() {
        assert!(is_truthy(raw("true")));
        assert!(is_truthy(raw(r#""TRUE""#)));
        assert!(!is_truthy(raw("false")));
        assert!(!is_truthy(raw("1")));
        assert!(!is_truthy(raw(r#""yes""#)));
    }
}
