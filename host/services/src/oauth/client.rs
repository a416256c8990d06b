//! OAuth 2.0 client side of the host: authorization URLs with PKCE (RFC 6749 §4.1, RFC 7636
//! S256), token requests for the authorization-code, refresh-token and client-credentials grants
//! (§4.1.3, §6, §4.4) with `client_secret_basic` or `client_secret_post` (§2.3.1), token
//! responses and errors (§5.1, §5.2), and revocation (RFC 7009).
//!
//! Requests go through the runtime's [`Egress`], so the operator's network policy applies to
//! token endpoints as it does to connectors: a manifest or a configuration value cannot point the
//! host at a private address, whether it names it or writes it as an IP literal. A refused
//! destination is reported in the host's own words; nothing is sent there. Tokens are [`Secret`]s: their `Debug` shows nothing, and no error message carries
//! one. How tokens are stored and refreshed is in [`super::Tokens`].

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use patchbay_registry::{ClientAuth, OAuth2Spec};
use serde::Deserialize;
use url::Url;

use patchbay_runtime::capability::credentials::Secret;
use patchbay_runtime::capability::http::BlockedAddress;
use patchbay_runtime::capability::http::policy::{Template, fill_template};
use patchbay_runtime::egress::{Egress, EgressError};

/// Time allowed for one token-endpoint request.
pub(crate) const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// `n` random bytes, base64url without padding (states, PKCE verifiers).
pub(crate) fn random_token(n: usize) -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The S256 code challenge of a PKCE verifier: `BASE64URL(SHA256(ASCII(verifier)))`.
pub(crate) fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// Fills `{{config.KEY}}` templates of a manifest URL (as `allowed_hosts` are filled) and parses
/// the result.
pub(crate) fn endpoint(template: &str, config: &BTreeMap<String, String>) -> Result<Url, String> {
    let filled = match fill_template(template, config) {
        Ok(Template::Plain) => template.to_string(),
        Ok(Template::Filled(url)) => url,
        Ok(Template::Missing(key)) => {
            return Err(format!("{template:?} needs the config value {key:?}, which is not set"));
        }
        Err(e) => return Err(format!("{template:?}: {}", e.reason)),
    };
    let url = Url::parse(&filled).map_err(|e| format!("{filled:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!("{filled:?} is not an http(s) URL"));
    }
    Ok(url)
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub(crate) struct TokenResponse {
    pub access_token: Secret,
    pub token_type: Option<String>,
    /// Lifetime of the access token in seconds, when the provider says.
    pub expires_in: Option<u64>,
    /// A new refresh token: issued on the first exchange, or rotated on refresh.
    pub refresh_token: Option<Secret>,
    pub scope: Option<String>,
}

/// A failed token request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// The provider answered with an RFC 6749 §5.2 error.
    #[error("the token endpoint refused the request (HTTP {status}): {code}{}", description.as_deref().map(|d| format!(" — {d}")).unwrap_or_default())]
    Refused { status: u16, code: String, description: Option<String> },
    /// The provider could not be reached or answered something that is not a token response.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// The endpoint is not a destination the host sends requests to (blocked network, scheme).
    #[error("the token endpoint is not reachable from this host: {0}")]
    Blocked(String),
}

impl TokenError {
    /// Whether asking again with the same grant cannot succeed (a user must authorize again):
    /// the grant or client was refused, as opposed to an outage.
    pub(crate) fn definitive(&self) -> bool {
        matches!(self, TokenError::Refused { code, .. }
            if matches!(code.as_str(), "invalid_grant" | "invalid_client" | "unauthorized_client" | "unsupported_grant_type" | "invalid_scope"))
    }

    /// The RFC error code, or `unavailable`.
    pub(crate) fn code(&self) -> &str {
        match self {
            TokenError::Refused { code, .. } => code,
            TokenError::Unavailable(_) => "unavailable",
            TokenError::Blocked(_) => "blocked",
        }
    }
}

/// An installation's OAuth client: the manifest's endpoints (templates filled) and the tenant's
/// client id and secret.
pub(crate) struct OAuthClient<'a> {
    pub spec: &'a OAuth2Spec,
    pub authorize_url: Option<Url>,
    pub token_url: Url,
    pub revoke_url: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
}

impl<'a> OAuthClient<'a> {
    /// The client of an installation with this configuration; the error says what is missing.
    pub(crate) fn new(
        spec: &'a OAuth2Spec,
        config: &BTreeMap<String, String>,
        client_id: Option<&Secret>,
        client_secret: Option<&Secret>,
    ) -> Result<Self, String> {
        let client_id = client_id.map(|s| s.expose().to_string()).filter(|s| !s.is_empty()).ok_or_else(|| {
            format!(
                "the credential {:?} (the OAuth client id) is not set; PUT it with the credentials first",
                spec.client_id_key()
            )
        })?;
        Ok(Self {
            spec,
            authorize_url: spec.authorize_url.as_deref().map(|u| endpoint(u, config)).transpose()?,
            token_url: endpoint(&spec.token_url, config)?,
            revoke_url: spec.revoke_url.as_deref().map(|u| endpoint(u, config)).transpose()?,
            client_id,
            client_secret: client_secret.cloned(),
        })
    }

    /// The URL the user's browser goes to (RFC 6749 §4.1.1), with `state` and, when the
    /// manifest uses PKCE, the S256 challenge of `verifier`.
    pub(crate) fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        verifier: Option<&str>,
    ) -> Result<Url, String> {
        let mut url = self.authorize_url.clone().ok_or("the connector's OAuth grant has no authorization step")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", &self.client_id);
            q.append_pair("redirect_uri", redirect_uri);
            if let Some(scope) = self.spec.scope() {
                q.append_pair("scope", &scope);
            }
            q.append_pair("state", state);
            if let Some(v) = verifier {
                q.append_pair("code_challenge", &s256_challenge(v));
                q.append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &self.spec.authorize_params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5).
    pub(crate) async fn exchange_code(
        &self,
        http: &Egress,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        self.token_request(http, form).await
    }

    /// Refreshes an access token (RFC 6749 §6).
    pub(crate) async fn refresh(&self, http: &Egress, refresh_token: &Secret) -> Result<TokenResponse, TokenError> {
        self.token_request(http, vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())]).await
    }

    /// Obtains a token with the client's own credentials (RFC 6749 §4.4).
    pub(crate) async fn client_credentials(&self, http: &Egress) -> Result<TokenResponse, TokenError> {
        let scope = self.spec.scope();
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = &scope {
            form.push(("scope", s));
        }
        self.token_request(http, form).await
    }

    /// Revokes a token (RFC 7009 §2.1); `Ok(false)` when the manifest names no revocation
    /// endpoint. The provider answers 200 for tokens it no longer knows, too.
    pub(crate) async fn revoke(&self, http: &Egress, token: &Secret, hint: &str) -> Result<bool, TokenError> {
        let Some(url) = &self.revoke_url else { return Ok(false) };
        let form = vec![("token", token.expose()), ("token_type_hint", hint)];
        let resp = self.post(http, url, form).await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(true);
        }
        let body = read_capped(resp).await?;
        Err(error_from(status, &body))
    }

    async fn token_request(&self, http: &Egress, form: Vec<(&str, &str)>) -> Result<TokenResponse, TokenError> {
        let resp = self.post(http, &self.token_url, form).await?;
        let status = resp.status().as_u16();
        let body = read_capped(resp).await?;
        if !(200..300).contains(&status) {
            return Err(error_from(status, &body));
        }
        parse_token_response(&body)
    }

    /// POSTs a form with the client's authentication and the extra token parameters.
    async fn post(
        &self,
        http: &Egress,
        url: &Url,
        mut form: Vec<(&str, &str)>,
    ) -> Result<reqwest::Response, TokenError> {
        for (k, v) in &self.spec.token_params {
            form.push((k, v));
        }
        let mut req = http
            .request(reqwest::Method::POST, url.clone())
            .map_err(|e| match e {
                EgressError::Blocked(b) => TokenError::Blocked(b.to_string()),
                EgressError::Invalid(m) => TokenError::Blocked(m),
            })?
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        match (self.spec.client_auth, &self.client_secret) {
            (ClientAuth::Basic, Some(secret)) => {
                // §2.3.1: id and secret are form-encoded before they are joined.
                let id = form_encode(&self.client_id);
                let secret = form_encode(secret.expose());
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
                );
            }
            (ClientAuth::Post, Some(secret)) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret.expose()));
            }
            // A public client identifies itself in the body.
            (_, None) => form.push(("client_id", &self.client_id)),
        }
        req.form(&form).send().await.map_err(failed)
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A failed send: a name that resolved only to blocked addresses is [`TokenError::Blocked`].
fn failed(e: reqwest::Error) -> TokenError {
    let e = e.without_url();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BlockedAddress>() {
            return TokenError::Blocked(b.to_string());
        }
        src = s.source();
    }
    TokenError::Unavailable(describe(&e))
}

/// A reqwest error without the URL (which never carries tokens here, but stays short).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        format!(
            "cannot connect: {}",
            std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string())
        )
    } else {
        e.to_string()
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(TokenError::Unavailable(format!("the response is larger than {MAX_TOKEN_RESPONSE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct RawToken {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    error_description: Option<String>,
}

/// Parses a §5.1 response; `expires_in` may come as a number or a numeric string.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<TokenResponse, TokenError> {
    let raw: RawToken = serde_json::from_slice(body)
        .map_err(|e| TokenError::Unavailable(format!("the token response is not JSON: {e}")))?;
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::Unavailable("the token response has no access_token".into()))?;
    if let Some(t) = &raw.token_type
        && !t.eq_ignore_ascii_case("bearer")
    {
        tracing::debug!(token_type = %t, "token type other than bearer");
    }
    let expires_in = match raw.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    Ok(TokenResponse {
        access_token: Secret::new(access_token),
        token_type: raw.token_type,
        expires_in,
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        scope: raw.scope,
    })
}

/// A §5.2 error, or an outage for anything else (5xx, HTML pages, 429).
fn error_from(status: u16, body: &[u8]) -> TokenError {
    if status < 500
        && status != 429
        && let Ok(e) = serde_json::from_slice::<RawError>(body)
    {
        if e.error == "temporarily_unavailable" {
            return TokenError::Unavailable(format!("HTTP {status}: temporarily_unavailable"));
        }
        let description = e.error_description.map(|d| d.chars().take(300).collect());
        return TokenError::Refused { status, code: e.error.chars().take(64).collect(), description };
    }
    TokenError::Unavailable(format!("HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn endpoints_fill_config_templates() {
        let config = BTreeMap::from([("base_url".to_string(), "http://127.0.0.1:9/".to_string())]);
        assert_eq!(
            endpoint("{{config.base_url}}/oauth/token", &config).unwrap().as_str(),
            "http://127.0.0.1:9/oauth/token"
        );
        assert!(endpoint("{{config.missing}}/t", &config).unwrap_err().contains("\"missing\""));
        assert!(endpoint("ftp://x/t", &config).is_err());
    }

    #[test]
    fn token_responses_and_errors_parse() {
        let t = parse_token_response(
            br#"{"access_token":"a","token_type":"Bearer","expires_in":"3600","refresh_token":"r","scope":"x y"}"#,
        )
        .unwrap();
        assert_eq!(
            (t.access_token.expose(), t.expires_in, t.refresh_token.as_ref().map(Secret::expose)),
            ("a", Some(3600), Some("r"))
        );
        assert!(parse_token_response(br#"{"token_type":"bearer"}"#).is_err());
        let refused = error_from(400, br#"{"error":"invalid_grant","error_description":"revoked"}"#);
        assert!(refused.definitive(), "{refused}");
        assert!(refused.to_string().contains("invalid_grant — revoked"));
        assert!(!error_from(503, b"<html>").definitive());
        assert!(!error_from(400, br#"{"error":"temporarily_unavailable"}"#).definitive());
        assert!(!error_from(400, br#"{"error":"invalid_request"}"#).definitive());
    }
}
