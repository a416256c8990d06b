//! The OpenAPI 3.1 description of the admin API, served at `/openapi.json`.
//!
//! Written by hand next to the router; a test checks that every endpoint the router is built
//! from ([`crate::endpoints`]) is described here and nothing else is.

use serde_json::{Value, json};

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

/// The document.
pub(crate) fn document() -> Value {
    let installation_id = path_param("id", "Installation id (`ins_…`).");
    let limits = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "timeout_ms": { "type": "integer", "minimum": 1, "maximum": 3600000, "description": "At most the host's longest call timeout (PATCHBAY_MAX_CALL_TIMEOUT_MS, 60000 by default)" },
            "memory_mib": { "type": "integer", "minimum": 1, "maximum": 1024 },
            "fuel": { "type": "integer", "minimum": 1 }
        }
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "patchbay admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Upload WebAssembly connectors, install and configure them per tenant, set their \
                encrypted credentials, invoke their operations with JSON and read their operation logs. \
                Authenticate with `Authorization: Bearer <token>`: the operator token manages tenants and the \
                public catalog; tenant API keys (scopes `view`, `manage`, `credentials`) manage that tenant's \
                installations. Errors are `{\"error\": {\"code\", \"message\"}}`."
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
                "RouteInput": { "type": "object", "additionalProperties": false,
                    "required": ["name", "event_types", "destination_installation", "operation"],
                    "properties": {
                        "name": { "type": "string" },
                        "event_types": { "type": "array", "items": { "type": "string" }, "description": "Globs: `*` is any run of characters" },
                        "source_installation": { "type": ["string", "null"] },
                        "filter": { "type": ["object", "null"], "description": "Payload path → value, or {eq|ne|in|nin|gt|gte|lt|lte|exists|prefix: …}" },
                        "destination_installation": { "type": "string" },
                        "operation": { "type": "string" },
                        "payload_template": { "description": "JSON with {{event.…}}, {{delivery.…}}, {{route.…}} placeholders" },
                        "retry_schedule": { "type": ["array", "null"], "items": { "type": "integer" }, "description": "Delays in seconds" },
                        "enabled": { "type": "boolean", "default": true } } },
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
            "/v1/tenants": {
                "post": { "summary": "Create a tenant (operator)", "tags": ["tenants"],
                    "requestBody": json_body(json!({ "type": "object", "required": ["id"], "additionalProperties": false,
                        "properties": { "id": { "type": "string", "pattern": "^[a-z][a-z0-9-]{1,62}$" }, "name": { "type": "string" } } })),
                    "responses": responses(&[("201", "Created", json!({ "$ref": "#/components/schemas/Tenant" }))], &["401", "403", "409", "422"]) },
                "get": { "summary": "List tenants (operator)", "tags": ["tenants"],
                    "responses": responses(&[("200", "Tenants", obj())], &["401", "403"]) }
            },
            "/v1/tenants/{tenant}/keys": {
                "parameters": [path_param("tenant", "Tenant id")],
                "post": { "summary": "Create a tenant API key (operator); the token is shown once", "tags": ["tenants"],
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false,
                        "properties": { "name": { "type": "string" }, "scopes": { "type": "array", "items": { "enum": ["view", "manage", "credentials"] } } } } } } },
                    "responses": responses(&[("201", "Created", json!({ "$ref": "#/components/schemas/ApiKey" }))], &["401", "403", "404", "422"]) },
                "get": { "summary": "List a tenant's API keys (operator)", "tags": ["tenants"],
                    "responses": responses(&[("200", "Keys", obj())], &["401", "403", "404"]) }
            },
            "/v1/tenants/{tenant}/keys/{key}": {
                "parameters": [path_param("tenant", "Tenant id"), path_param("key", "Key id")],
                "delete": { "summary": "Revoke an API key (operator)", "tags": ["tenants"],
                    "responses": responses(&[("204", "Revoked", Value::Null)], &["401", "403", "404"]) }
            },
            "/v1/connectors": {
                "post": { "summary": "Upload a connector component", "tags": ["connectors"],
                    "description": "The body is the `.wasm` component with its embedded manifest. The operator publishes to the public catalog; a tenant key (`manage`) uploads a private connector only that tenant sees. A published version is immutable.",
                    "requestBody": { "required": true, "content": { "application/wasm": { "schema": { "type": "string", "contentEncoding": "binary" } } } },
                    "responses": responses(&[("201", "Published", json!({ "$ref": "#/components/schemas/Version" })), ("200", "Already published with the same bytes", json!({ "$ref": "#/components/schemas/Version" }))], &["401", "403", "409", "413", "415", "422"]) },
                "get": { "summary": "List the catalog", "tags": ["connectors"],
                    "parameters": [
                        query_param("category", "Hub category", json!({ "type": "string" })),
                        query_param("search", "Case-insensitive text in id, title, description or provider", json!({ "type": "string" }))
                    ],
                    "responses": responses(&[("200", "Connectors", obj())], &["400", "401", "403"]) }
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
                        "properties": { "sunset": { "type": "string", "format": "date" }, "message": { "type": "string" } } } } } },
                    "responses": responses(&[("200", "Deprecated", json!({ "$ref": "#/components/schemas/Version" }))], &["401", "403", "404", "422"]) }
            },
            "/v1/installations": {
                "post": { "summary": "Install a connector (`manage`)", "tags": ["installations"],
                    "requestBody": json_body(json!({ "type": "object", "required": ["connector", "name"], "additionalProperties": false,
                        "properties": {
                            "connector": { "type": "string" }, "version": { "type": "string", "description": "Default: latest" },
                            "api_version": { "type": "string", "description": "Default: the manifest's default" },
                            "name": { "type": "string" }, "config": { "type": "object" }, "limits": limits.clone(),
                            "enabled": { "type": "boolean" },
                            "credentials_from": { "type": "string", "description": "Installation of the same bundle to share credentials with" } } })),
                    "responses": responses(&[("201", "Installed", json!({ "$ref": "#/components/schemas/Installation" }))], &["401", "403", "409", "422"]) },
                "get": { "summary": "List the tenant's installations (`view`)", "tags": ["installations"],
                    "responses": responses(&[("200", "Installations", obj())], &["401", "403"]) }
            },
            "/v1/installations/{id}": {
                "parameters": [installation_id.clone()],
                "get": { "summary": "An installation (`view`)", "tags": ["installations"],
                    "responses": responses(&[("200", "Installation", json!({ "$ref": "#/components/schemas/Installation" }))], &["401", "403", "404"]) },
                "patch": { "summary": "Change version, API version, enabled, config, limits or name (`manage`); takes effect on the next call", "tags": ["installations"],
                    "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                        "version": { "type": "string" }, "api_version": { "type": ["string", "null"] }, "enabled": { "type": "boolean" },
                        "config": { "type": "object" }, "limits": limits, "name": { "type": "string" } } })),
                    "responses": responses(&[("200", "Updated", json!({ "$ref": "#/components/schemas/Installation" }))], &["401", "403", "404", "422"]) },
                "delete": { "summary": "Uninstall: removes credentials, state and logs (`manage`)", "tags": ["installations"],
                    "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
            },
            "/v1/installations/{id}/credentials": {
                "parameters": [installation_id.clone()],
                "put": { "summary": "Replace the credentials (`credentials`); stored encrypted", "tags": ["credentials"],
                    "requestBody": json_body(json!({ "type": "object", "additionalProperties": { "type": "string" } })),
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
                        query_param("type", "Event type, exact or a glob like `expense.*`", json!({ "type": "string" })),
                        query_param("status", "Events with a delivery in this status", json!({ "enum": ["pending", "leased", "delivered", "dead"] })),
                        query_param("installation", "Source or destination installation", json!({ "type": "string" })),
                        query_param("since", "RFC 3339 time, unix ms, or an age like 15m", json!({ "type": "string" })),
                        query_param("until", "RFC 3339 time or unix ms (exclusive)", json!({ "type": "string" })),
                        query_param("cursor", "next_cursor of the previous page", json!({ "type": "string" })),
                        query_param("limit", "1..=1000, default 100", json!({ "type": "integer" }))
                    ],
                    "responses": responses(&[("200", "Events", json!({ "type": "object", "properties": {
                        "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
                        "next_cursor": { "type": ["string", "null"] } } }))], &["400", "401", "403"]) }
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
                        query_param("level", "Minimum level", json!({ "enum": ["trace", "debug", "info", "warn", "error"] })),
                        query_param("since", "RFC 3339 time, unix ms, or an age like 15m", json!({ "type": "string" })),
                        query_param("cursor", "next_cursor of the previous page", json!({ "type": "string" })),
                        query_param("limit", "1..=1000, default 100", json!({ "type": "integer" }))
                    ],
                    "responses": responses(&[("200", "Entries, oldest first", json!({ "type": "object", "properties": {
                        "entries": { "type": "array", "items": { "$ref": "#/components/schemas/LogEntry" } },
                        "next_cursor": { "type": ["string", "null"] } } }))], &["400", "401", "403", "404"]) }
            }
        }
    });
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), routing_paths(&installation_id)) {
        paths.extend(more);
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), sync_paths(&installation_id)) {
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
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "version": { "type": "integer" } } } } } },
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
                "get": { "summary": "The tenant's installations by health, with counts and an overall status (`view`)", "tags": ["health"],
                    "responses": responses(&[("200", "The summary", obj())], &["401", "403"]) }
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
                        "installation": { "type": "string" }, "route": { "type": "string" } } })),
                    "responses": responses(&[("200", "How many were redriven", json!({ "type": "object", "properties": {
                        "redriven": { "type": "integer" } } }))], &["401", "403", "404", "422"]) }
            },
            "/v1/routes": {
                "post": { "summary": "Create a routing rule (`manage`)", "tags": ["routes"],
                    "description": "Events whose type matches a glob (and the source installation and payload filter, when given) become deliveries to the destination's operation, with arguments rendered from the payload template. See host/src/routing.rs.",
                    "requestBody": json_body(json!({ "$ref": "#/components/schemas/RouteInput" })),
                    "responses": responses(&[("201", "Created", json!({ "$ref": "#/components/schemas/Route" }))], &["400", "401", "403", "409", "422"]) },
                "get": { "summary": "The tenant's routes (`view`)", "tags": ["routes"],
                    "responses": responses(&[("200", "Routes", json!({ "type": "object", "properties": {
                        "routes": { "type": "array", "items": { "$ref": "#/components/schemas/Route" } } } }))], &["401", "403"]) }
            },
            "/v1/routes/{id}": {
                "parameters": [path_param("id", "Route id (`rte_…`)")],
                "get": { "summary": "A route (`view`)", "tags": ["routes"],
                    "responses": responses(&[("200", "Route", json!({ "$ref": "#/components/schemas/Route" }))], &["401", "403", "404"]) },
                "patch": { "summary": "Change a route; absent fields stay, null clears optional ones (`manage`)", "tags": ["routes"],
                    "requestBody": json_body(obj()),
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
    let stream = json!({ "type": "object", "required": ["installation", "entity"], "additionalProperties": false,
        "properties": {
            "installation": { "type": "string" }, "entity": { "type": "string" },
            "direction": { "enum": ["import", "export"], "default": "import" },
            "mode": { "enum": ["full", "incremental"], "default": "full" },
            "source": { "type": "object", "description": "Exports: the records written (installation + entity)",
                "properties": { "installation": { "type": "string" }, "entity": { "type": "string" } } } } });
    let mut schedule_input = stream.clone();
    if let Some(p) = schedule_input["properties"].as_object_mut() {
        p.insert("interval_secs".into(), json!({ "type": "integer", "minimum": 1, "maximum": 31_622_400 }));
        p.insert("cron".into(), json!({ "type": "string", "description": "5-field cron expression, UTC" }));
        p.insert("enabled".into(), json!({ "type": "boolean" }));
    }
    json!({
        "/v1/syncs": {
            "post": { "summary": "Queue a sync run of an installation's entity (`manage`)", "tags": ["sync"],
                "description": "Imports read the connector's `read-batch` into the records store; exports write another installation's records through `write-batch`. Each batch commits with its cursor in one transaction; a run interrupted by a crash resumes from the last committed batch.",
                "requestBody": json_body(stream),
                "responses": responses(&[("202", "Queued", run.clone())], &["400", "401", "403", "404", "409", "415", "422", "502"]) },
            "get": { "summary": "The tenant's runs, newest first (`view`)", "tags": ["sync"],
                "parameters": [
                    query_param("installation", "Only this installation's", json!({ "type": "string" })),
                    query_param("entity", "Only this entity's", json!({ "type": "string" })),
                    query_param("status", "Only runs in this status", json!({ "type": "string" })),
                    query_param("before", "next_before of the previous page", json!({ "type": "string" })),
                    query_param("limit", "1..=1000, default 100", json!({ "type": "integer" }))
                ],
                "responses": responses(&[("200", "Runs", obj())], &["400", "401", "403"]) }
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
            "get": { "summary": "Item-level errors of a run (`view`)", "tags": ["sync"],
                "parameters": [
                    query_param("after", "next_after of the previous page", json!({ "type": "integer" })),
                    query_param("limit", "1..=1000, default 100", json!({ "type": "integer" }))
                ],
                "responses": responses(&[("200", "Errors", obj())], &["400", "401", "403", "404"]) }
        },
        "/v1/schedules": {
            "post": { "summary": "Schedule a stream's runs: `interval_secs` or `cron` (`manage`)", "tags": ["sync"],
                "description": "A due schedule queues a run unless the stream already has one queued or running; missed firings do not pile up. With several hosts exactly one fires each schedule.",
                "requestBody": json_body(schedule_input),
                "responses": responses(&[("201", "Created", obj())], &["400", "401", "403", "404", "409", "422", "502"]) },
            "get": { "summary": "The tenant's schedules (`view`)", "tags": ["sync"],
                "parameters": [query_param("installation", "Only this installation's", json!({ "type": "string" }))],
                "responses": responses(&[("200", "Schedules", obj())], &["400", "401", "403"]) }
        },
        "/v1/schedules/{id}": {
            "parameters": [schedule_id],
            "get": { "summary": "A schedule (`view`)", "tags": ["sync"],
                "responses": responses(&[("200", "Schedule", obj())], &["401", "403", "404"]) },
            "patch": { "summary": "Change a schedule's timing, mode or `enabled` (`manage`)", "tags": ["sync"],
                "requestBody": json_body(obj()),
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
                    query_param("since", "A change sequence number: next_since of the previous page (default 0)", json!({ "type": "integer" })),
                    query_param("limit", "1..=1000, default 100", json!({ "type": "integer" }))
                ],
                "responses": responses(&[("200", "Changes", obj())], &["400", "401", "403", "404"]) }
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
                "requestBody": json_body(obj()),
                "responses": responses(&[("200", "Mapping", obj())], &["400", "401", "403", "404", "415", "422"]) },
            "delete": { "summary": "Remove the field mapping (`manage`)", "tags": ["sync"],
                "responses": responses(&[("204", "Deleted", Value::Null)], &["401", "403", "404"]) }
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
}
