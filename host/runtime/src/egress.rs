//! The one way out of the host: every request the host makes on anyone's behalf — a connector's
//! `http` call, an OAuth token, revocation or anything added later — is built by [`Egress`], which
//! holds the only outbound client and never hands it out.
//!
//! What it guarantees for every request and every redirect hop (callers follow redirects
//! themselves, through [`Egress::request`] again):
//! - the scheme is `http` or `https` and the URL carries no user info;
//! - an IP-literal host (in any spelling the URL parser accepts: `2130706433`, `0x7f.1`,
//!   `[::ffff:127.0.0.1]`) is checked against the operator's [`NetworkPolicy`] before anything is
//!   sent;
//! - a name is resolved by the client's guarded resolver, which drops blocked addresses, and the
//!   connection goes to an address that passed the check (no second lookup a rebinding DNS server
//!   could answer differently);
//! - no proxy from the environment and no automatic redirects.
//!
//! Which destinations a caller may reach at all (the allow-list) is the caller's part: a
//! connector's [`EgressPolicy`](crate::capability::http::EgressPolicy), an OAuth client's declared
//! endpoints.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

use crate::capability::http::network::{BlockedAddress, GuardedResolver, NetworkPolicy};

/// Why a request was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    /// The URL is not one the host sends requests to (scheme, user info, no host).
    #[error("{0}")]
    Invalid(String),
    /// The destination address is in a blocked network.
    #[error("{0}")]
    Blocked(#[from] BlockedAddress),
}

/// The host's outbound HTTP: one client, guarded by the operator's network policy.
#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    network: Arc<NetworkPolicy>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").field("network", &self.network).finish_non_exhaustive()
    }
}

impl Egress {
    /// The guarded client for `network`.
    pub fn new(network: NetworkPolicy) -> reqwest::Result<Self> {
        let network = Arc::new(network);
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { policy: network.clone() }))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("patchbay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, network })
    }

    /// The operator's network policy this guard applies.
    pub fn network(&self) -> &NetworkPolicy {
        &self.network
    }

    /// Checks what can be checked before connecting: scheme, user info and IP-literal hosts.
    /// Names are checked when they resolve.
    pub fn check(&self, url: &Url) -> Result<(), EgressError> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(EgressError::Invalid(format!("unsupported scheme {:?}", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Invalid("URLs may not carry user info".into()));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(EgressError::Invalid("the URL has no host".into())),
        };
        self.network.check(literal)?;
        Ok(())
    }

    /// A request to `url`, after [`Egress::check`]; the client behind it resolves names through
    /// the guarded resolver and follows no redirects.
    pub fn request(&self, method: reqwest::Method, url: Url) -> Result<reqwest::RequestBuilder, EgressError> {
        self.check(&url)?;
        Ok(self.client.request(method, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_blocked_literal_is_refused_before_sending() {
        let egress = Egress::new(NetworkPolicy::strict()).unwrap();
        for raw in [
            "http://127.0.0.1:9/token",
            "http://2130706433:9/token",
            "http://0x7f.1:9/token",
            "http://0177.0.0.1:9/token",
            "http://127.1:9/token",
            "http://[::ffff:127.0.0.1]:9/token",
            "http://[::ffff:0:7f00:1]:9/token",
            "http://[2002:7f00:1::1]:9/token",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0:9/",
        ] {
            let url = Url::parse(raw).unwrap();
            let err = egress.request(reqwest::Method::POST, url).expect_err(raw);
            assert!(matches!(err, EgressError::Blocked(_)), "{raw}: {err}");
        }
        for raw in ["ftp://example.com/x", "file:///etc/passwd", "https://user:pw@example.com/"] {
            let url = Url::parse(raw).unwrap();
            assert!(matches!(egress.check(&url), Err(EgressError::Invalid(_))), "{raw}");
        }
        assert!(egress.check(&Url::parse("https://example.com/token").unwrap()).is_ok());
        assert!(egress.check(&Url::parse("https://93.184.216.34/token").unwrap()).is_ok());
    }
}
