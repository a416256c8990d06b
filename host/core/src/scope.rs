//! Tenancy scope: which installation of which tenant something runs for.

use std::fmt;
use std::sync::Arc;

/// Which installation a call runs for. Every capability scopes its data by this, never by anything
/// the guest says; the tenant comes from the caller's credential, never from a request body.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The tenant's id, a slug such as `acme`.
    pub tenant: Arc<str>,
    /// `ins_<hex>`: the installation's id.
    pub installation: Arc<str>,
}

impl Scope {
    /// The scope of `installation` of `tenant`.
    pub fn new(tenant: impl Into<Arc<str>>, installation: impl Into<Arc<str>>) -> Self {
        Self { tenant: tenant.into(), installation: installation.into() }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.installation)
    }
}
