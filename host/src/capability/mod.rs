//! Host capabilities lent to connectors: one module per WIT import.
//!
//! Each module holds its policy, its per-call context, its WIT `Host` implementation and its tests.
//! Backends that outlive a call (operation log, state, events) are traits with in-memory
//! implementations here; durable ones plug in without touching the runtime.

pub mod credentials;
pub mod events;
pub mod http;
pub mod log;
pub mod state;
pub(crate) mod stdio;

use std::fmt;
use std::sync::Arc;

/// Which installation a call runs for. Every capability scopes its data by this, never by anything
/// the guest says.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub tenant: Arc<str>,
    pub installation: Arc<str>,
}

impl Scope {
    pub fn new(tenant: impl Into<Arc<str>>, installation: impl Into<Arc<str>>) -> Self {
        Self { tenant: tenant.into(), installation: installation.into() }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.installation)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
