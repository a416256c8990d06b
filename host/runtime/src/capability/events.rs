//! `events` capability: connectors emit typed events (type, subject, JSON payload, idempotency key)
//! to the host, which hands them to an [`EventSink`] (the outbox, once it exists).
//!
//! Events are validated (type syntax, JSON payload, sizes) and counted per call; the same
//! idempotency key from the same installation yields the same event id.

use std::collections::HashMap;
use std::sync::Mutex;

use patchbay_core::event::EmittedEvent;
use patchbay_core::{Scope, now_ms};
use wasmtime::component::Linker;

use crate::bindings::connector::patchbay::connector::events as wit;
use wit::{Event, EventError};

/// Where emitted events go. Returns the event id; a repeated idempotency key returns the first id.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Stores `event` and returns its id, or the first event's id for a repeated idempotency key.
    async fn emit(&self, event: EmittedEvent) -> Result<String, String>;
}

#[derive(Default)]
struct SinkInner {
    events: std::collections::VecDeque<EmittedEvent>,
    /// (installation, idempotency key) → event id.
    seen: HashMap<(Scope, String), String>,
}

/// In-memory sink that deduplicates by (installation, idempotency key). Unbounded by default
/// (tests); `MemoryEventSink::bounded` keeps only the newest events, for a long-running host.
#[derive(Default)]
pub struct MemoryEventSink {
    inner: Mutex<SinkInner>,
    cap: Option<usize>,
}

impl MemoryEventSink {
    /// Keeps at most `cap` events (and their idempotency keys), dropping the oldest.
    #[cfg(test)]
    pub(crate) fn bounded(cap: usize) -> Self {
        Self { inner: Mutex::default(), cap: Some(cap.max(1)) }
    }

    /// Every event held, oldest first.
    pub fn events(&self) -> Vec<EmittedEvent> {
        self.inner.lock().map(|g| g.events.iter().cloned().collect()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl EventSink for MemoryEventSink {
    async fn emit(&self, event: EmittedEvent) -> Result<String, String> {
        let mut g = self.inner.lock().map_err(|_| "event sink lock poisoned".to_string())?;
        if let Some(key) = &event.idempotency_key {
            if let Some(id) = g.seen.get(&(event.scope.clone(), key.clone())) {
                return Ok(id.clone());
            }
            g.seen.insert((event.scope.clone(), key.clone()), event.id.clone());
        }
        let id = event.id.clone();
        g.events.push_back(event);
        if let Some(cap) = self.cap {
            while g.events.len() > cap {
                if let Some(old) = g.events.pop_front()
                    && let Some(key) = old.idempotency_key
                {
                    g.seen.remove(&(old.scope, key));
                }
            }
        }
        Ok(id)
    }
}

/// Per-call bounds on emission.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    /// Most events one call may emit.
    pub max_per_call: u32,
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self { max_per_call: 100, max_payload_bytes: 256 * 1024 }
    }
}

/// What the `events` host functions see: the calling installation's scope, limits and count.
pub(crate) struct EventsView<'a> {
    pub scope: &'a Scope,
    pub sink: &'a dyn EventSink,
    pub limits: &'a EventLimits,
    pub emitted: &'a mut u32,
    /// Removes the installation's secrets from what is emitted.
    pub scrubber: &'a crate::capability::log::Scrubber,
}

crate::capability::view_data!(EventsData => EventsView);

/// Links the `events` import; `view` gives the host functions the calling installation's
/// [`EventsView`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EventsView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, EventsData>(linker, view)
}

/// Checks an event type: dotted lower-case segments of `[a-z0-9_-]`, at most 128 bytes.
pub(crate) fn validate_event_type(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 128 {
        return Err("event type must be 1 to 128 bytes".into());
    }
    for seg in t.split('.') {
        if seg.is_empty()
            || !seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(format!("event type {t:?} must be dotted segments of [a-z0-9_-]"));
        }
    }
    Ok(())
}

fn new_event_id() -> String {
    let mut b = [0u8; 12];
    // ring's SystemRandom never fails on supported platforms; fall back to time if it does.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    format!("evt_{}", hex::encode(b))
}

impl EventsView<'_> {
    pub(crate) async fn emit(&mut self, e: Event) -> Result<String, EventError> {
        if *self.emitted >= self.limits.max_per_call {
            return Err(EventError::TooMany(self.limits.max_per_call));
        }
        validate_event_type(&e.event_type).map_err(EventError::Invalid)?;
        if e.payload.len() > self.limits.max_payload_bytes {
            return Err(EventError::Invalid(format!("payload larger than {} bytes", self.limits.max_payload_bytes)));
        }
        if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(&e.payload) {
            return Err(EventError::Invalid(format!("payload is not valid JSON: {err}")));
        }
        if e.subject.as_ref().is_some_and(|s| s.len() > 512)
            || e.idempotency_key.as_ref().is_some_and(|k| k.len() > 256)
        {
            return Err(EventError::Invalid("subject or idempotency key too long".into()));
        }
        *self.emitted += 1;
        // Events leave the sandbox: no secret of the installation goes with them.
        let payload = if self.scrubber.contains_secret(&e.payload) {
            let mut v: serde_json::Value = serde_json::from_str(&e.payload)
                .map_err(|err| EventError::Invalid(format!("payload is not valid JSON: {err}")))?;
            self.scrubber.scrub_json(&mut v);
            v.to_string()
        } else {
            e.payload
        };
        let ev = EmittedEvent {
            id: new_event_id(),
            scope: self.scope.clone(),
            event_type: e.event_type,
            subject: e.subject.map(|s| self.scrubber.scrub(&s)),
            payload,
            idempotency_key: e.idempotency_key.map(|k| self.scrubber.scrub(&k)),
            at_ms: now_ms(),
        };
        self.sink.emit(ev).await.map_err(EventError::Invalid)
    }
}

impl wit::Host for EventsView<'_> {
    async fn emit(&mut self, event: Event) -> wasmtime::Result<Result<String, EventError>> {
        Ok(EventsView::emit(self, event).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EventLimits = EventLimits { max_per_call: 2, max_payload_bytes: 64 };

    fn ev(t: &str, payload: &str, key: Option<&str>) -> Event {
        Event { event_type: t.into(), subject: None, payload: payload.into(), idempotency_key: key.map(Into::into) }
    }

    #[tokio::test]
    async fn bounded_sink_keeps_the_newest() {
        let sink = MemoryEventSink::bounded(2);
        for i in 0..5 {
            let e = EmittedEvent {
                id: format!("e{i}"),
                scope: Scope::new("t", "i"),
                event_type: "x.y".into(),
                subject: None,
                payload: "{}".into(),
                idempotency_key: Some(format!("k{i}")),
                at_ms: 0,
            };
            sink.emit(e).await.unwrap();
        }
        let ids: Vec<String> = sink.events().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["e3", "e4"]);
        assert_eq!(sink.inner.lock().unwrap().seen.len(), 2);
    }

    #[tokio::test]
    async fn validates_and_dedupes() {
        let sink = MemoryEventSink::default();
        let scope = Scope::new("t", "i");
        let mut emitted = 0;
        let scrubber = crate::capability::log::Scrubber::new(["sk_test_secret"]);
        let mut c =
            EventsView { scope: &scope, sink: &sink, limits: &LIMITS, emitted: &mut emitted, scrubber: &scrubber };
        assert!(matches!(c.emit(ev("Bad Type", "{}", None)).await, Err(EventError::Invalid(_))));
        assert!(matches!(c.emit(ev("a.b", "{not json", None)).await, Err(EventError::Invalid(_))));
        let id1 = c.emit(ev("payment.succeeded", r#"{"id":1}"#, Some("k1"))).await.unwrap();
        let id2 = c.emit(ev("payment.succeeded", r#"{"id":1}"#, Some("k1"))).await.unwrap();
        assert_eq!(id1, id2);
        assert_eq!(sink.events().len(), 1);
        assert!(matches!(c.emit(ev("a.b", "{}", None)).await, Err(EventError::TooMany(2))));
    }

    #[tokio::test]
    async fn emitted_events_carry_no_secret() {
        let sink = MemoryEventSink::default();
        let scope = Scope::new("t", "i");
        let mut emitted = 0;
        let scrubber = crate::capability::log::Scrubber::new(["sk_test_secret"]);
        let mut c =
            EventsView { scope: &scope, sink: &sink, limits: &LIMITS, emitted: &mut emitted, scrubber: &scrubber };
        let mut e = ev("a.b", r#"{"k":"sk_test_secret"}"#, None);
        e.subject = Some("sk_test_secret".into());
        c.emit(e).await.unwrap();
        let got = &sink.events()[0];
        assert!(!got.payload.contains("sk_test") && got.payload.contains("[REDACTED]"), "{}", got.payload);
        assert_eq!(got.subject.as_deref(), Some("[REDACTED]"));
    }

    #[test]
    fn event_type_syntax() {
        assert!(validate_event_type("github.workflow_run.completed").is_ok());
        assert!(validate_event_type("a..b").is_err());
        assert!(validate_event_type("A.b").is_err());
    }
}
