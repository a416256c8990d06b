//! Webhook ingress: `POST /hooks/{hook_id}` from verification to the durable 2xx.
//!
//! 1. The hook id (an unguessable token per installation, see `Installations::rotate_webhook`) names the
//!    installation; it must be enabled and its connector must implement the webhook-endpoint hub.
//! 2. **Verification**, on the raw body as received: by the host when the manifest declares a
//!    `[webhook]` spec (Standard Webhooks, GitHub, Stripe, Slack or generic HMAC, see
//!    [`patchbay_crypto::webhook`]), else by the connector's `verify` export. Fail closed: no
//!    secret configured means 401, never "accept unverified". A second secret under
//!    `{secret}_previous` is also accepted while senders rotate.
//! 3. **Transform**: the connector's `transform` turns the request into normalized events (the
//!    connector's `verify`, when delegated, runs in the same sandbox first).
//! 4. **Routing**: each event is matched against the tenant's routes (`crate::routing`); every
//!    match becomes a delivery.
//! 5. **Durable before acknowledged**: the raw request, the events and the deliveries are written
//!    in one transaction ([`patchbay_store::Store::record_ingress`]) before the answer goes out.
//!    The dedupe key (the verified webhook id, else the connector's idempotency key of a single
//!    event) makes a repeat a no-op that gets the first request's answer back.
//!
//!    A scheme whose signature covers no timestamp (GitHub, generic HMAC without one) cannot tell
//!    a replay from a new request: its delivery id (`X-GitHub-Delivery`) is not signed, so
//!    anyone holding one signed request could send it again under new ids. For those schemes the
//!    dedupe key is the SHA-256 of the signed body, for the webhook dedupe window
//!    (`PATCHBAY_WEBHOOK_DEDUPE_HOURS`, 72 h by default; a replay after it is new). The trade-off: a
//!    sender that sends a byte-identical body twice on purpose gets the first answer back and no
//!    new events — GitHub's bodies carry ids and timestamps, so distinct deliveries differ.

use std::sync::Arc;
use std::time::Duration;

use patchbay_core::error::{Error, ErrorKind, Missing, Webhook};
use patchbay_core::new_id;
use patchbay_crypto::webhook::{Verifier, WebhookError};
use patchbay_runtime::bindings::ConnectorError;
use patchbay_runtime::calls::{IncomingRequest, Verification, webhook_ingress};
use patchbay_runtime::{Hub, Runtime};
use patchbay_store::{IngressOutcome, NewEvent, NewIngress, Store};
use serde_json::{Value, json};

use crate::config_cache::{ConfigWatch, TenantCache};
use crate::dispatch::Handoff;
use crate::installations::{Installations, Resolved, call_error};
use crate::metrics::{CallSample, Metrics};
use crate::routing::{Router, deliveries_for};

/// Most hook ids whose installation is kept in memory.
const HOOK_CACHE_MAX: usize = 10_000;

/// Longest dedupe key kept; longer ids are hashed.
const MAX_DEDUPE_KEY: usize = 200;
/// Most events one request may turn into.
pub(crate) const MAX_EVENTS_PER_REQUEST: usize = 1_000;

/// A webhook request as received.
pub struct InboundWebhook {
    /// The hook id from the request's path, naming the installation.
    pub hook_id: String,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// Names lower-cased, values as received (lossy UTF-8), in order.
    pub headers: Vec<(String, String)>,
    /// The body, byte-exact.
    pub body: Vec<u8>,
    /// When the request arrived, in unix milliseconds.
    pub received_at_ms: i64,
}

/// The answer to a webhook sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAnswer {
    /// The HTTP status to answer with.
    pub status: u16,
    /// JSON text.
    pub body: String,
    /// Whether this repeats the answer to an earlier delivery of the same webhook.
    pub duplicate: bool,
}

/// A random key that is valid text, hex, base64 and a Standard Webhooks secret alike.
/// `None` when the system has no randomness to give (the request is then refused).
fn random_key() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(hex::encode(b))
}

fn unauthorized(reason: impl Into<String>) -> Error {
    Error::new(ErrorKind::Webhook(Webhook::Unverified), reason)
}

fn connector_failure(stage: &str, e: &ConnectorError) -> Error {
    match e {
        ConnectorError::Permanent(f) => {
            Error::new(ErrorKind::Webhook(Webhook::Rejected), format!("{stage}: {} ({})", f.message, f.code))
        }
        ConnectorError::Unauthorized(f) => unauthorized(format!("{stage}: {}", f.message)),
        ConnectorError::RateLimited(r) => {
            let retry_after = Duration::from_millis(r.retry_after_ms);
            Error::new(ErrorKind::Webhook(Webhook::RateLimited { retry_after }), format!("{stage}: {}", r.message))
        }
        ConnectorError::Retryable(f) => {
            Error::new(ErrorKind::Webhook(Webhook::Unavailable), format!("{stage}: {}", f.message))
        }
    }
}

/// The dedupe key of a signed body whose scheme signs no timestamp.
fn content_key(body: &[u8]) -> String {
    format!("body-sha256:{}", hex::encode(ring::digest::digest(&ring::digest::SHA256, body)))
}

/// A dedupe key of bounded length.
fn dedupe_key(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if raw.len() <= MAX_DEDUPE_KEY {
        return Some(raw.to_string());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, raw.as_bytes());
    Some(format!("sha256:{}", hex::encode(digest.as_ref())))
}

/// The installation (tenant, id) each hook id addresses: kept until the tenant's data changes on
/// any host (see [`crate::config_cache`]), so a rotated hook id stops working within the bound.
pub(crate) type HookCache = TenantCache<String, (String, String)>;

/// A hook cache for `watch`.
pub(crate) fn hook_cache(watch: Arc<ConfigWatch>) -> HookCache {
    TenantCache::new(watch, HOOK_CACHE_MAX)
}

/// What ingress needs from the rest of the host.
pub(crate) struct IngressDeps {
    pub store: Store,
    pub installations: Arc<Installations>,
    pub runtime: Runtime,
    pub router: Arc<Router>,
    pub writer: Arc<dyn IngressWriter>,
    pub metrics: Arc<Metrics>,
    pub hooks: HookCache,
    /// Largest webhook body accepted.
    pub max_body_bytes: usize,
    /// Where deliveries go straight to this host's dispatcher.
    pub handoff: Arc<Handoff>,
}

/// Webhook ingress: verify, transform, route, record.
pub struct Ingress {
    store: Store,
    installations: Arc<Installations>,
    runtime: Runtime,
    router: Arc<Router>,
    writer: Arc<dyn IngressWriter>,
    metrics: Arc<Metrics>,
    hooks: HookCache,
    max_body_bytes: usize,
    handoff: Arc<Handoff>,
}

impl Ingress {
    pub(crate) fn new(d: IngressDeps) -> Self {
        Self {
            store: d.store,
            installations: d.installations,
            runtime: d.runtime,
            router: d.router,
            writer: d.writer,
            metrics: d.metrics,
            hooks: d.hooks,
            max_body_bytes: d.max_body_bytes,
            handoff: d.handoff,
        }
    }

    /// The largest webhook body this host accepts.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Counts a request refused before it was read (too large, malformed), by its answer.
    pub fn count_refused(&self, answer: &str) {
        self.metrics.webhook_received(&format!("rejected_{answer}"));
    }

    /// The installation a hook id addresses, resolved for a call; see [`HookCache`].
    async fn resolve_hook(&self, hook_id: &str) -> Result<Arc<Resolved>, Error> {
        let unknown = || Error::missing(Missing::Hook, "no webhook endpoint at this address");
        if hook_id.len() < 32 || !hook_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(unknown());
        }
        let key = hook_id.to_string();
        let (tenant, id) = match self.hooks.get(&key) {
            Some(hit) => hit,
            None => {
                let read_point = self.hooks.read_point();
                let row = self.store.installation_by_hook(hook_id).await?.ok_or_else(unknown)?;
                self.hooks.put(key, &row.tenant, read_point, (row.tenant.clone(), row.id.clone()));
                (row.tenant, row.id)
            }
        };
        Ok(Arc::new(self.installations.resolve(&tenant, &id).await?))
    }

    /// Verifies, transforms, routes and durably records one webhook request; see the module docs.
    /// Errors are answers too (401 unverified, 400 malformed, 404 unknown hook, …).
    pub async fn ingest(&self, req: InboundWebhook) -> Result<WebhookAnswer, Error> {
        let resolved = self.resolve_hook(&req.hook_id).await?;
        let p = &resolved.prepared;
        let row = &resolved.row;
        if p.component.hub != Some(Hub::WebhookEndpoint) {
            return Err(Error::missing(
                Missing::WebhookEndpoint,
                format!(
                    "installation {} runs connector {}, which does not receive webhooks",
                    row.id, p.version.connector_id
                ),
            ));
        }
        let mut dedupe = None;
        if let Some(spec) = &p.manifest.webhook {
            let secrets = &p.installation.secrets;
            let previous = format!("{}_previous", spec.secret);
            let mut keys: Vec<&str> = [spec.secret.as_str(), previous.as_str()]
                .iter()
                .filter_map(|n| secrets.get(n).map(|s| s.expose()))
                .filter(|s| !s.is_empty())
                .collect();
            // A sender learns nothing about the endpoint's configuration: without a secret the
            // request is checked against a random key, so it fails exactly as a wrong signature
            // does (the operator is told in the host's log).
            let placeholder;
            if keys.is_empty() {
                tracing::warn!(
                    installation = %row.id,
                    "no webhook secret is configured (credential {:?}); every request is refused until it is set",
                    spec.secret
                );
                placeholder = random_key().ok_or_else(|| unauthorized(WebhookError::NoMatch.to_string()))?;
                keys.push(&placeholder);
            }
            let verifier = match Verifier::from_spec(spec, &keys) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(installation = %row.id, "webhook verifier cannot be built: {e}");
                    return Err(unauthorized(WebhookError::NoMatch.to_string()));
                }
            };
            let now = req.received_at_ms.div_euclid(1000);
            let verified = verifier.verify(req.headers.as_slice(), &req.body, now).map_err(|e| match e {
                WebhookError::MissingHeader(_)
                | WebhookError::MalformedSignature { .. }
                | WebhookError::MalformedHeader { .. }
                | WebhookError::OutsideWindow { .. }
                | WebhookError::NoMatch => unauthorized(e.to_string()),
                other => {
                    tracing::warn!(installation = %row.id, "webhook verification is misconfigured: {other}");
                    unauthorized(WebhookError::NoMatch.to_string())
                }
            })?;
            dedupe = match verified.timestamp {
                Some(_) => verified.webhook_id.as_deref().and_then(dedupe_key),
                // No signed timestamp: only the signed content tells a replay apart.
                None => Some(content_key(&req.body)),
            };
        }
        let delegate = p.manifest.webhook.is_none();
        let incoming = IncomingRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            received_at: u64::try_from(req.received_at_ms).unwrap_or(0),
        };
        let report = webhook_ingress(&self.runtime, &p.component, &p.installation, incoming, delegate).await;
        self.metrics.record(&CallSample {
            connector: &p.version.connector_id,
            operation: "webhooks.transform",
            outcome: match &report.outcome {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            },
            duration: report.duration,
            fuel: report.fuel_consumed,
            http_requests: report.http_requests,
        });
        let outcome = report.outcome.map_err(|e| call_error(&e))?;
        match outcome.verification {
            None => {}
            Some(Ok(Verification::Valid(id))) => dedupe = id.as_deref().and_then(dedupe_key),
            Some(Ok(Verification::Invalid(reason))) => return Err(unauthorized(reason)),
            Some(Err(e)) => return Err(connector_failure("verification failed", &e)),
        }
        let normalized = match outcome.events {
            Some(Ok(events)) => events,
            Some(Err(e)) => return Err(connector_failure("the request could not be read", &e)),
            None => return Err(unauthorized("the connector did not verify the request")),
        };
        if normalized.len() > MAX_EVENTS_PER_REQUEST {
            return Err(Error::internal(format!(
                "the connector made {} events of one request; at most {MAX_EVENTS_PER_REQUEST}",
                normalized.len()
            )));
        }
        if dedupe.is_none() && normalized.len() == 1 {
            dedupe = normalized[0].idempotency_key.as_deref().and_then(dedupe_key);
        }
        let ingress_id = new_id("whr");
        let rules = self.router.rules(&row.tenant).await?;
        let mut events = Vec::with_capacity(normalized.len());
        let mut deliveries = Vec::new();
        let base_key = dedupe.clone().unwrap_or_else(|| ingress_id.clone());
        for (i, ne) in normalized.into_iter().enumerate() {
            let payload: Value = serde_json::from_str(&ne.payload).map_err(|e| {
                Error::internal(format!("the connector's event #{i} has a payload that is not JSON: {e}"))
            })?;
            if ne.event_type.trim().is_empty() {
                return Err(Error::internal(format!("the connector's event #{i} has an empty type")));
            }
            let event = NewEvent {
                id: new_id("evt"),
                tenant: row.tenant.clone(),
                source_installation: row.id.clone(),
                event_type: ne.event_type,
                subject: ne.subject,
                payload: ne.payload,
                idempotency_key: ne
                    .idempotency_key
                    .as_deref()
                    .and_then(dedupe_key)
                    .unwrap_or_else(|| format!("{base_key}#{i}")),
                created_at_ms: ne
                    .occurred_at
                    .and_then(|t| i64::try_from(t).ok())
                    .filter(|t| *t > 0)
                    .unwrap_or(req.received_at_ms),
            };
            deliveries.extend(deliveries_for(&rules, &event, &payload, req.received_at_ms));
            events.push(event);
        }
        let body = json!({
            "received": true,
            "id": ingress_id,
            "events": events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        })
        .to_string();
        let headers_json = serde_json::to_string(&req.headers).unwrap_or_else(|_| "[]".into());
        let ingress = NewIngress {
            id: ingress_id,
            tenant: row.tenant.clone(),
            installation: row.id.clone(),
            received_at_ms: req.received_at_ms,
            method: req.method,
            path: req.path,
            headers_json,
            body: req.body,
            dedupe_key: dedupe,
            response_status: 200,
            response_body: body.clone(),
        };
        // Due deliveries go to this host's dispatcher as they are written, as far as it has free
        // slots; the rest are left for a claim.
        let reserved = self.handoff.reserve(&mut deliveries, patchbay_core::now_ms());
        let event_ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let (answer, left_pending) = match self.writer.record(ingress, events, deliveries).await? {
            IngressOutcome::Recorded { events: stored } => {
                let stored: Vec<_> = event_ids.into_iter().zip(stored).collect();
                let left_pending = reserved.left_pending;
                self.handoff.start(reserved, &stored, patchbay_core::now_ms());
                (WebhookAnswer { status: 200, body, duplicate: false }, left_pending)
            }
            IngressOutcome::Duplicate { response_status, response_body, .. } => {
                (WebhookAnswer { status: response_status, body: response_body, duplicate: true }, false)
            }
        };
        if left_pending {
            self.store.wake_dispatchers();
        }
        self.metrics.webhook_received(if answer.duplicate { "duplicate" } else { "stored" });
        Ok(answer)
    }
}

/// Where [`Ingress::ingest`] writes: one transaction per request, or a group committer.
#[async_trait::async_trait]
pub(crate) trait IngressWriter: Send + Sync {
    async fn record(
        &self,
        ingress: NewIngress,
        events: Vec<NewEvent>,
        deliveries: Vec<patchbay_store::NewDelivery>,
    ) -> Result<IngressOutcome, patchbay_store::StoreError>;
}

/// Many requests per transaction (see [`patchbay_store::GroupCommitter`]); each caller is answered
/// after the commit that holds its request.
#[async_trait::async_trait]
impl IngressWriter for patchbay_store::GroupCommitter {
    async fn record(
        &self,
        ingress: NewIngress,
        events: Vec<NewEvent>,
        deliveries: Vec<patchbay_store::NewDelivery>,
    ) -> Result<IngressOutcome, patchbay_store::StoreError> {
        patchbay_store::GroupCommitter::record(self, patchbay_store::IngressWrite { ingress, events, deliveries }).await
    }
}

/// One transaction per request.
pub struct DirectWriter(pub patchbay_store::Store);

#[async_trait::async_trait]
impl IngressWriter for DirectWriter {
    async fn record(
        &self,
        ingress: NewIngress,
        events: Vec<NewEvent>,
        deliveries: Vec<patchbay_store::NewDelivery>,
    ) -> Result<IngressOutcome, patchbay_store::StoreError> {
        self.0.record_ingress(&ingress, &events, &deliveries).await
    }
}
