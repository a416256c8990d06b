//! The one way every list of the API pages: `?limit=` (1..=1000, default 100), an opaque
//! `?cursor=` (the `next_cursor` of the previous page; left out or empty: the first page), and
//! `next_cursor` in the response, `null` on the last page.
//!
//! A cursor carries the list's sort key of the previous page's last row (see
//! `patchbay_store::PageRequest`): `(created_at, id)`, an entry number, `(id, owner)`... It is
//! written as a tag naming the list and the format's version (`in1` = installations, version 1)
//! followed by the key in lowercase hex: integers as 16 hex digits (two's complement, big-endian),
//! texts as the hex of their bytes — printable ASCII only, at most [`MAX_TEXT`] bytes, two texts
//! separated by `00`. Hex rather than base64 so that the OpenAPI document can state the format
//! exactly as a pattern ([`pattern`]): every string that matches decodes to a position, and every
//! other string is refused with a 400 naming `cursor`, so a client (or a fuzzer) sending a
//! schema-valid cursor is never refused.
//!
//! Clients must treat cursors as opaque: the format may change with its version tag. Nothing in a
//! cursor needs to be secret or signed: it is a position in the caller's own list, which the
//! queries always filter by the tenant of the credential, so a cursor made up or taken from
//! another tenant only selects where the caller's own page starts.

use patchbay_store::{Page, PageRequest};

use crate::{ApiError, ApiResult, page_limit};

/// Longest text a cursor carries, in bytes (ids are far shorter).
pub(crate) const MAX_TEXT: usize = 128;

/// The lists that page, each with its cursor tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    Tenants,
    Keys,
    Connectors,
    Installations,
    Health,
    Routes,
    Schedules,
    Events,
    Logs,
    Runs,
    ItemErrors,
    Changes,
}

/// The shape of a list's sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An integer: an entry id, an error number, a change sequence number.
    Int,
    /// A text: an id.
    Text,
    /// A time and an id.
    IntText,
    /// Two texts: an id and an owner.
    TextText,
}

impl List {
    #[cfg(test)]
    pub(crate) const ALL: [List; 12] = [
        List::Tenants,
        List::Keys,
        List::Connectors,
        List::Installations,
        List::Health,
        List::Routes,
        List::Schedules,
        List::Events,
        List::Logs,
        List::Runs,
        List::ItemErrors,
        List::Changes,
    ];

    /// The tag and version every cursor of the list starts with.
    fn tag(self) -> &'static str {
        match self {
            List::Tenants => "te1",
            List::Keys => "ke1",
            List::Connectors => "co1",
            List::Installations => "in1",
            List::Health => "he1",
            List::Routes => "ro1",
            List::Schedules => "sc1",
            List::Events => "ev1",
            List::Logs => "lo1",
            List::Runs => "ru1",
            List::ItemErrors => "er1",
            List::Changes => "ch1",
        }
    }

    pub(crate) fn shape(self) -> Shape {
        match self {
            List::Tenants => Shape::Text,
            List::Connectors => Shape::TextText,
            List::Logs | List::ItemErrors | List::Changes => Shape::Int,
            List::Keys
            | List::Installations
            | List::Health
            | List::Routes
            | List::Schedules
            | List::Events
            | List::Runs => Shape::IntText,
        }
    }
}

/// A sort key a cursor can carry.
pub(crate) trait Key: Sized {
    /// Its shape (the list's must match).
    const SHAPE: Shape;
    /// Appends its hex form.
    fn write(&self, out: &mut String);
    /// Reads it from the whole of `hex` (after the tag); `None` when malformed.
    fn read(hex: &str) -> Option<Self>;
}

fn write_int(n: i64, out: &mut String) {
    out.push_str(&format!("{:016x}", n as u64));
}

fn read_int(hex: &str) -> Option<i64> {
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|n| n as i64)
}

fn write_text(s: &str, out: &mut String) {
    for b in s.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
}

/// Printable ASCII (`0x20..=0x7E`), at most [`MAX_TEXT`] bytes, as lowercase hex pairs.
fn read_text(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() / 2 > MAX_TEXT {
        return None;
    }
    let mut out = String::with_capacity(hex.len() / 2);
    for pair in hex.as_bytes().chunks(2) {
        let pair = std::str::from_utf8(pair).ok()?;
        if !pair.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let b = u8::from_str_radix(pair, 16).ok()?;
        if !(0x20..=0x7e).contains(&b) {
            return None;
        }
        out.push(char::from(b));
    }
    Some(out)
}

impl Key for i64 {
    const SHAPE: Shape = Shape::Int;
    fn write(&self, out: &mut String) {
        write_int(*self, out);
    }
    fn read(hex: &str) -> Option<Self> {
        read_int(hex)
    }
}

impl Key for String {
    const SHAPE: Shape = Shape::Text;
    fn write(&self, out: &mut String) {
        write_text(self, out);
    }
    fn read(hex: &str) -> Option<Self> {
        read_text(hex)
    }
}

impl Key for (i64, String) {
    const SHAPE: Shape = Shape::IntText;
    fn write(&self, out: &mut String) {
        write_int(self.0, out);
        write_text(&self.1, out);
    }
    fn read(hex: &str) -> Option<Self> {
        let int = read_int(hex.get(..16)?)?;
        Some((int, read_text(hex.get(16..)?)?))
    }
}

impl Key for (String, String) {
    const SHAPE: Shape = Shape::TextText;
    fn write(&self, out: &mut String) {
        write_text(&self.0, out);
        out.push_str("00");
        write_text(&self.1, out);
    }
    fn read(hex: &str) -> Option<Self> {
        // Pairs of printable characters never are `00`, so the first one at an even offset
        // separates the texts.
        let split = (0..hex.len()).step_by(2).find(|&i| hex.get(i..i + 2) == Some("00"))?;
        Some((read_text(&hex[..split])?, read_text(&hex[split + 2..])?))
    }
}

/// The cursor of a page that starts after `key`.
pub(crate) fn encode<K: Key>(list: List, key: &K) -> String {
    debug_assert_eq!(K::SHAPE, list.shape(), "{list:?}");
    let mut out = list.tag().to_string();
    key.write(&mut out);
    out
}

/// The position `cursor` names in `list`: `None` for no cursor or an empty one (the first page);
/// a 400 naming `cursor` when it is not a cursor of this list.
pub(crate) fn decode<K: Key>(list: List, cursor: Option<&str>) -> ApiResult<Option<K>> {
    debug_assert_eq!(K::SHAPE, list.shape(), "{list:?}");
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else { return Ok(None) };
    cursor.strip_prefix(list.tag()).and_then(K::read).map(Some).ok_or_else(|| {
        let shown: String = cursor.chars().take(64).collect();
        let more = if shown.len() < cursor.len() { "…" } else { "" };
        ApiError::bad_request(format!(
            "cursor={shown:?}{more} is not a cursor of this list; pass the next_cursor of its previous page, or none for the first page"
        ))
    })
}

/// The page a request asks for: `cursor` (see [`decode`]) and `limit` (see [`page_limit`]).
pub(crate) fn request<K: Key>(list: List, cursor: Option<&str>, limit: Option<u32>) -> ApiResult<PageRequest<K>> {
    let limit = page_limit(limit)?;
    Ok(PageRequest::after(decode(list, cursor)?, limit))
}

/// The `next_cursor` of `page`: the position of its last row, `None` on the last page.
pub(crate) fn next<K: Key, T>(list: List, page: &Page<T>, key: impl FnOnce(&T) -> K) -> Option<String> {
    page.last_if_more().map(|last| encode(list, &key(last)))
}

/// The regex (ECMA-262 and Python `re` alike) of the cursors of `list`, the empty string
/// included; stated in the OpenAPI document.
pub(crate) fn pattern(list: List) -> String {
    const PRINTABLE: &str = "(?:[2-6][0-9a-f]|7[0-9a-e])";
    let text = format!("{PRINTABLE}{{0,{MAX_TEXT}}}");
    let int = "[0-9a-f]{16}";
    let key = match list.shape() {
        Shape::Int => int.to_string(),
        Shape::Text => text,
        Shape::IntText => format!("{int}{text}"),
        Shape::TextText => format!("{text}00{text}"),
    };
    format!("^(?:{}{key})?$", list.tag())
}

/// The longest cursor of `list`, in characters.
pub(crate) fn max_length(list: List) -> usize {
    let text = 2 * MAX_TEXT;
    list.tag().len()
        + match list.shape() {
            Shape::Int => 16,
            Shape::Text => text,
            Shape::IntText => 16 + text,
            Shape::TextText => 2 * text + 2,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<K: Key + PartialEq + std::fmt::Debug>(list: List, key: K) {
        let c = encode(list, &key);
        assert!(c.len() <= max_length(list), "{c}");
        assert_eq!(decode::<K>(list, Some(&c)).unwrap(), Some(key), "{c}");
    }

    #[test]
    fn cursors_round_trip() {
        round_trip(List::Logs, 0i64);
        round_trip(List::Logs, -1i64);
        round_trip(List::Changes, i64::MAX);
        round_trip(List::Tenants, "acme".to_string());
        round_trip(List::Tenants, String::new());
        round_trip(List::Installations, (1_795_302_309_123i64, "ins_0123456789abcdef".to_string()));
        round_trip(List::Events, (i64::MIN, "~ !".to_string()));
        round_trip(List::Connectors, ("notify-webhook".to_string(), String::new()));
        round_trip(List::Connectors, ("x".to_string(), "acme".to_string()));
        round_trip(List::Tenants, "a".repeat(MAX_TEXT));
    }

    #[test]
    fn malformed_cursors_are_refused_naming_the_parameter() {
        let good = encode(List::Installations, &(5i64, "ins_1".to_string()));
        assert_eq!(decode::<(i64, String)>(List::Installations, None).unwrap(), None);
        assert_eq!(decode::<(i64, String)>(List::Installations, Some("")).unwrap(), None);
        let bad = [
            "nope".to_string(),
            good.to_uppercase(),
            good.replace("in1", "in2"),
            good.replace("in1", "ro1"),
            format!("{good}0"),
            good[..good.len() - 2].to_string() + "7f",
            good[..good.len() - 2].to_string() + "00",
            good[..10].to_string(),
            format!("{good}{}", "61".repeat(MAX_TEXT)),
            "in1é".to_string(),
        ];
        for c in &bad {
            let e = decode::<(i64, String)>(List::Installations, Some(c)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{c}");
            assert_eq!(e.code, "bad_request");
            assert!(e.message.starts_with("cursor="), "{}", e.message);
        }
        assert!(decode::<(String, String)>(List::Connectors, Some("co16100")).unwrap().is_some());
        assert!(decode::<(String, String)>(List::Connectors, Some("co161")).is_err(), "no separator");
    }

    /// The document's pattern accepts exactly what `decode` accepts (checked on samples of both).
    #[test]
    fn the_pattern_states_the_format() {
        let samples = |list: List| -> Vec<String> {
            let mut v = vec![String::new(), list.tag().to_string(), format!("{}00", list.tag()), "x".into()];
            v.push(match list.shape() {
                Shape::Int => encode(list, &7i64),
                Shape::Text => encode(list, &"t-1".to_string()),
                Shape::IntText => encode(list, &(7i64, "t_1".to_string())),
                Shape::TextText => encode(list, &("a".to_string(), "b".to_string())),
            });
            let last = v.last().cloned().unwrap_or_default();
            v.push(format!("{last}7f"));
            v.push(format!("{last}20"));
            v.push(last.replace(list.tag(), "zz1"));
            v
        };
        for list in List::ALL {
            let re = regex_automata::meta::Regex::new(&pattern(list)).unwrap();
            for s in samples(list) {
                let ok = match list.shape() {
                    Shape::Int => decode::<i64>(list, Some(&s)).is_ok(),
                    Shape::Text => decode::<String>(list, Some(&s)).is_ok(),
                    Shape::IntText => decode::<(i64, String)>(list, Some(&s)).is_ok(),
                    Shape::TextText => decode::<(String, String)>(list, Some(&s)).is_ok(),
                };
                assert_eq!(re.is_match(&s), ok, "{list:?} {s:?}");
            }
        }
    }
}
