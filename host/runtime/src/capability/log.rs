//! `log` capability: structured entries into the installation's operation log.
//!
//! Entries are buffered per call (bounded in count and bytes so a log flood cannot exhaust the host)
//! and handed to an [`OperationLog`] backend when the call ends. Every message and field value passes
//! through the installation's [`Scrubber`] before it is buffered, so secret values never reach storage
//! or the console. Guest stdout/stderr and the host's own records (HTTP requests, call outcome) use
//! the same buffer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use patchbay_core::log::{Level, LogEntry, Source};
use patchbay_core::{Scope, now_ms};
use wasmtime::component::Linker;

use crate::bindings::connector::patchbay::connector::log as wit;

/// A guest's level is the host's.
impl From<wit::Level> for Level {
    fn from(l: wit::Level) -> Self {
        match l {
            wit::Level::Trace => Level::Trace,
            wit::Level::Debug => Level::Debug,
            wit::Level::Info => Level::Info,
            wit::Level::Warn => Level::Warn,
            wit::Level::Error => Level::Error,
        }
    }
}

/// Replaces an installation's secret values, and every encoding of them a guest could use to
/// carry one out, with `[REDACTED]`: the value and its reverse; URL encoding (form, or every byte
/// as `%xx` in either case); JSON string escaping (as is, or every character as `\uXXXX`); hex in
/// either case; base64 (standard and URL-safe alphabets, padded or not) at any offset — the
/// characters of `base64("user:" + secret)` that only the secret decides are found too.
/// Hex, `%xx` and `\u` forms are matched without regard to ASCII case.
#[derive(Default, Clone)]
pub struct Scrubber {
    /// Forms matched exactly.
    exact: Option<AhoCorasick>,
    /// Forms matched without regard to ASCII case.
    folded: Option<AhoCorasick>,
}

/// Secrets shorter than this are not scrubbed: replacing every occurrence of a 1–3 character string
/// would destroy the log while protecting nothing a brute force would not find.
pub(crate) const MIN_SCRUB_LEN: usize = 4;

/// Secrets this long or longer are also looked for reversed and as base64 at an offset (whose
/// needles are two or three characters shorter than the secret's encoding).
const MIN_DERIVED_LEN: usize = 6;

const REDACTED: &str = "[REDACTED]";

/// The base64 characters of `secret` placed `offset` bytes into a longer message that depend on
/// the secret's bytes alone.
fn base64_at_offset(engine: &base64::engine::GeneralPurpose, secret: &[u8], offset: usize) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(secret);
    let encoded = engine.encode(&padded);
    let first = (8 * offset).div_ceil(6);
    let last = (8 * (offset + secret.len())) / 6;
    encoded.get(first..last).unwrap_or_default().to_string()
}

impl Scrubber {
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let mut exact: Vec<String> = Vec::new();
        let mut folded: Vec<String> = Vec::new();
        for s in secrets {
            if s.len() < MIN_SCRUB_LEN {
                continue;
            }
            let bytes = s.as_bytes();
            exact.push(s.to_string());
            exact.push(STANDARD.encode(s));
            exact.push(URL_SAFE.encode(s));
            if let Ok(json) = serde_json::to_string(s) {
                exact.push(json[1..json.len() - 1].to_string());
            }
            folded.push(url::form_urlencoded::byte_serialize(bytes).collect());
            folded.push(bytes.iter().map(|b| format!("%{b:02x}")).collect());
            folded.push(bytes.iter().map(|b| format!("{b:02x}")).collect());
            folded.push(s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect());
            if s.len() >= MIN_DERIVED_LEN {
                exact.push(s.chars().rev().collect());
                for offset in 0..3 {
                    exact.push(base64_at_offset(&STANDARD, bytes, offset));
                    exact.push(base64_at_offset(&URL_SAFE, bytes, offset));
                }
            }
        }
        // Each form once more as it reads inside a JSON string (a connector's JSON text carried
        // in a string, such as a record's `data`).
        let json_escaped = |needles: &mut Vec<String>| {
            let extra: Vec<String> = needles
                .iter()
                .filter(|n| n.contains(['\\', '"']))
                .map(|n| n.replace('\\', "\\\\").replace('"', "\\\""))
                .collect();
            needles.extend(extra);
        };
        json_escaped(&mut exact);
        json_escaped(&mut folded);
        let build = |mut needles: Vec<String>, fold: bool| {
            needles.retain(|n| n.len() >= MIN_SCRUB_LEN);
            needles.sort();
            needles.dedup();
            if needles.is_empty() {
                return None;
            }
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(fold)
                .build(&needles)
                .ok()
        };
        Self { exact: build(exact, false), folded: build(folded, true) }
    }

    /// Whether there is nothing to scrub (the installation has no secret long enough).
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_none() && self.folded.is_none()
    }

    fn automata(&self) -> impl Iterator<Item = &AhoCorasick> {
        self.exact.iter().chain(self.folded.iter())
    }

    /// Whether `text` contains any secret value or encoding of one.
    pub(crate) fn contains_secret(&self, text: &str) -> bool {
        self.automata().any(|a| a.is_match(text))
    }

    /// Byte-level scrubbing for bodies that need not be UTF-8; `None` when nothing matched.
    pub(crate) fn scrub_bytes(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for a in self.automata() {
            let current = out.as_deref().unwrap_or(data);
            if a.is_match(current) {
                let replaced = a.replace_all_bytes(current, &vec![REDACTED.as_bytes(); a.patterns_len()]);
                out = Some(replaced);
            }
        }
        out
    }

    /// `text` with every secret value and encoding of one replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = std::borrow::Cow::Borrowed(text);
        for a in self.automata() {
            if a.is_match(out.as_ref()) {
                out = std::borrow::Cow::Owned(a.replace_all(out.as_ref(), &vec![REDACTED; a.patterns_len()]));
            }
        }
        out.into_owned()
    }

    /// Scrubs every string of a JSON value (object keys included) in place; `true` when
    /// anything was replaced.
    pub fn scrub_json(&self, value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        if self.is_empty() {
            return false;
        }
        match value {
            Value::String(s) => {
                if self.contains_secret(s) {
                    *s = self.scrub(s);
                    return true;
                }
                false
            }
            Value::Array(items) => items.iter_mut().fold(false, |changed, v| self.scrub_json(v) | changed),
            Value::Object(map) => {
                if map.keys().any(|k| self.contains_secret(k)) {
                    let old = std::mem::take(map);
                    for (k, mut v) in old {
                        self.scrub_json(&mut v);
                        map.insert(self.scrub(&k), v);
                    }
                    true
                } else {
                    map.values_mut().fold(false, |changed, v| self.scrub_json(v) | changed)
                }
            }
            _ => false,
        }
    }
}

/// Per-call bounds on logging.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Most entries one call may write.
    pub max_entries: usize,
    /// Most bytes of messages and fields one call may write.
    pub max_bytes: usize,
    /// Longest message (and field value) kept, in bytes; longer ones are truncated.
    pub max_message_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self { max_entries: 1_000, max_bytes: 512 * 1024, max_message_bytes: 8 * 1024 }
    }
}

/// The per-call entry buffer. Scrubbing uses the installation's [`Scrubber`], passed in by the
/// caller so the buffer holds no shared state.
pub(crate) struct LogBuffer {
    limits: LogLimits,
    entries: Vec<LogEntry>,
    bytes: usize,
    dropped: u64,
}

impl LogBuffer {
    pub(crate) fn new(limits: LogLimits) -> Self {
        Self { limits, entries: Vec::new(), bytes: 0, dropped: 0 }
    }

    /// Adds an entry after scrubbing it; drops it (and counts the drop) past the call's limits.
    pub(crate) fn push(
        &mut self,
        scrubber: &Scrubber,
        level: Level,
        source: Source,
        message: &str,
        fields: Vec<(String, String)>,
    ) {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if self.entries.len() >= self.limits.max_entries || self.bytes + size > self.limits.max_bytes {
            self.dropped += 1;
            return;
        }
        let message = truncate(&scrubber.scrub(message), self.limits.max_message_bytes);
        let fields = fields
            .into_iter()
            .map(|(k, v)| {
                (truncate(&scrubber.scrub(&k), 256), truncate(&scrubber.scrub(&v), self.limits.max_message_bytes))
            })
            .collect();
        self.bytes += size;
        self.entries.push(LogEntry { at_ms: now_ms(), level, source, message, fields });
    }

    /// Host record that bypasses the limits (call outcome, drop notices): at most a few per call.
    pub(crate) fn push_host(
        &mut self,
        scrubber: &Scrubber,
        level: Level,
        message: &str,
        fields: Vec<(String, String)>,
    ) {
        let message = scrubber.scrub(message);
        let fields = fields.into_iter().map(|(k, v)| (k, scrubber.scrub(&v))).collect();
        self.entries.push(LogEntry { at_ms: now_ms(), level, source: Source::Host, message, fields });
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Ends the call's logging: appends a notice for dropped entries and returns everything.
    pub(crate) fn finish(mut self, scrubber: &Scrubber) -> Vec<LogEntry> {
        if self.dropped > 0 {
            let msg = format!(
                "{} log entries dropped: per-call limit of {} entries / {} bytes reached",
                self.dropped, self.limits.max_entries, self.limits.max_bytes
            );
            let dropped = self.dropped.to_string();
            self.push_host(scrubber, Level::Warn, &msg, vec![("dropped".into(), dropped)]);
        }
        self.entries
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated {} bytes]", &s[..end], s.len() - end)
}

/// Where finished calls' entries go.
///
/// `append` is called once per call, after the sandbox is torn down, on the call's task; it must
/// not block. A durable implementation hands the batch to a background writer that commits
/// batches from many calls together.
pub trait OperationLog: Send + Sync + 'static {
    /// Appends one call's entries to the installation's log.
    fn append(&self, scope: &Scope, entries: Vec<LogEntry>);
}

/// In-memory operation log, newest last, bounded per installation.
#[derive(Default)]
pub struct MemoryOperationLog {
    inner: Mutex<BTreeMap<Scope, VecDeque<LogEntry>>>,
    cap_per_installation: usize,
}

impl MemoryOperationLog {
    /// Keeps the newest `cap_per_installation` entries of each installation (0: 10 000).
    pub fn new(cap_per_installation: usize) -> Self {
        Self { inner: Mutex::default(), cap_per_installation }
    }

    /// The entries kept for the installation, oldest first.
    pub fn entries(&self, scope: &Scope) -> Vec<LogEntry> {
        self.inner
            .lock()
            .map(|m| m.get(scope).map(|v| v.iter().cloned().collect()).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl OperationLog for MemoryOperationLog {
    fn append(&self, scope: &Scope, entries: Vec<LogEntry>) {
        if entries.is_empty() {
            return;
        }
        if let Ok(mut m) = self.inner.lock() {
            let cap = if self.cap_per_installation == 0 { 10_000 } else { self.cap_per_installation };
            let v = match m.get_mut(scope) {
                Some(v) => v,
                None => m.entry(scope.clone()).or_default(),
            };
            v.extend(entries);
            while v.len() > cap {
                v.pop_front();
            }
        }
    }
}

/// What the `log` host function sees: the call's buffer and the installation's scrubber.
pub(crate) struct LogView<'a> {
    pub buf: &'a mut LogBuffer,
    pub scrubber: &'a Scrubber,
}

crate::capability::view_data!(LogData => LogView);

/// Links the `log` import; `view` gives the host functions the call's [`LogView`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LogView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, LogData>(linker, view)
}

impl wit::Host for LogView<'_> {
    fn log(&mut self, level: wit::Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        self.buf.push(self.scrubber, level.into(), Source::Guest, &message, fields);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_raw_and_encoded_secret_values() {
        let s = Scrubber::new(["sk_live_abc123", "p@ss word"]);
        assert_eq!(s.scrub("key=sk_live_abc123!"), "key=[REDACTED]!");
        assert_eq!(s.scrub("q=p%40ss+word"), "q=[REDACTED]");
        let b64 = base64::engine::general_purpose::STANDARD.encode("sk_live_abc123");
        assert_eq!(s.scrub(&format!("Basic {b64}")), "Basic [REDACTED]");
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    /// Finding: the scrubber missed hex, lower-case `%xx`, JSON `\u` escapes, reversed values and
    /// base64 at an offset (`base64("user:" + secret)`).
    #[test]
    fn scrubs_every_encoding_a_guest_could_use() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        let secret = "sk_live_Zq9/+x:Tq";
        let s = Scrubber::new([secret]);
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        let pct: String = secret.bytes().map(|b| format!("%{b:02x}")).collect();
        let uesc: String = secret.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
        let mut forms = vec![
            secret.to_string(),
            hex.clone(),
            hex.to_uppercase(),
            pct.clone(),
            pct.to_uppercase(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>().to_lowercase(),
            uesc.clone(),
            uesc.to_uppercase().replace("\\U", "\\u"),
            secret.chars().rev().collect(),
            serde_json::to_string(secret).unwrap(),
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
        ];
        for prefix in ["u:", "us:", "use:", "user:"] {
            forms.push(STANDARD.encode(format!("{prefix}{secret}")));
            forms.push(URL_SAFE_NO_PAD.encode(format!("{prefix}{secret}!")));
        }
        for form in forms {
            let text = format!("before {form} after");
            assert!(s.contains_secret(&text), "not found: {form}");
            let scrubbed = s.scrub(&text);
            assert!(scrubbed.contains(REDACTED), "{form} -> {scrubbed}");
            assert!(!scrubbed.contains(&form), "{form} -> {scrubbed}");
        }
        let mut v = serde_json::json!({"a": [secret, {"b": hex}], secret: 1});
        s.scrub_json(&mut v);
        assert!(!v.to_string().contains("sk_live"), "{v}");
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn scrubs_bytes() {
        let s = Scrubber::new(["tok_12345"]);
        assert_eq!(s.scrub_bytes(b"a tok_12345 b tok_12345").unwrap(), b"a [REDACTED] b [REDACTED]".to_vec());
        assert_eq!(s.scrub_bytes(b"\xff\x00 nothing"), None);
        assert_eq!(s.scrub_bytes(b"tok_1234"), None);
    }

    #[test]
    fn short_secrets_are_not_scrubbed() {
        let s = Scrubber::new(["abc"]);
        assert!(s.is_empty());
        assert_eq!(s.scrub("abc"), "abc");
    }

    #[test]
    fn buffer_scrubs_fields_and_bounds_entries() {
        let s = Scrubber::new(["hunter22"]);
        let mut b = LogBuffer::new(LogLimits { max_entries: 3, max_bytes: 1 << 20, max_message_bytes: 64 });
        for i in 0..10 {
            b.push(
                &s,
                Level::Info,
                Source::Guest,
                &format!("m{i} hunter22"),
                vec![("token".into(), "hunter22".into())],
            );
        }
        assert_eq!(b.dropped(), 7);
        let out = b.finish(&s);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|e| !e.message.contains("hunter22")));
        assert!(out.iter().all(|e| e.fields.iter().all(|(_, v)| !v.contains("hunter22"))));
        assert!(out[3].message.contains("7 log entries dropped"));
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundary() {
        let t = truncate("ééééé", 3);
        assert!(t.starts_with('é'));
        assert!(t.contains("truncated"));
    }
}
