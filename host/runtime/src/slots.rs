//! Fair sharing of the host's call (and compile) slots: a call holds one slot of its tenant's
//! share and one of the host's pool. A tenant that floods the host queues behind its own share, so other tenants'
//! calls find free slots in the pool and start at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// A tenant share and the host pool.
pub(crate) struct Slots {
    pool: Arc<Semaphore>,
    total: usize,
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A running call's (or compile's) place: released when dropped.
pub(crate) struct Slot {
    _pool: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
}

impl Slots {
    /// `total` slots, of which one tenant may hold at most `per_tenant` at once.
    pub(crate) fn new(total: usize, per_tenant: usize) -> Self {
        let total = total.max(1);
        Self {
            pool: Arc::new(Semaphore::new(total)),
            total,
            per_tenant: per_tenant.clamp(1, total),
            tenants: Mutex::default(),
        }
    }

    /// The most slots one tenant holds at once.
    #[cfg(test)]
    pub(crate) fn per_tenant(&self) -> usize {
        self.per_tenant
    }

    fn share(&self, tenant: &str) -> Arc<Semaphore> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        // Forget shares nobody holds or waits for, so the map stays as small as the active set.
        if tenants.len() > 1024 {
            let full = self.per_tenant;
            tenants.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < full);
        }
        tenants.entry(tenant.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
    }

    /// Waits for a slot of `tenant`'s share, then one of the pool. A share as large as the pool
    /// is no share: calls then queue for the pool alone, first come, first served.
    pub(crate) async fn acquire(&self, tenant: &str) -> Result<Slot, AcquireError> {
        let tenant = if self.per_tenant < self.total { Some(self.share(tenant).acquire_owned().await?) } else { None };
        let pool = self.pool.clone().acquire_owned().await?;
        Ok(Slot { _pool: pool, _tenant: tenant })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_saturated_tenant_leaves_slots_for_others() {
        let slots = Slots::new(4, 2);
        let a1 = slots.acquire("a").await.unwrap();
        let a2 = slots.acquire("a").await.unwrap();
        // A third call of `a` waits for its share although the pool has room...
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), slots.acquire("a")).await;
        assert!(waiting.is_err(), "tenant a exceeded its share");
        // ...and `b` starts at once.
        let b1 = tokio::time::timeout(std::time::Duration::from_millis(50), slots.acquire("b")).await;
        assert!(b1.is_ok(), "tenant b was starved");
        drop((a1, a2, b1));
        assert_eq!(slots.per_tenant(), 2);
        assert_eq!(Slots::new(4, 0).per_tenant(), 1);
        assert_eq!(Slots::new(4, 9).per_tenant(), 4);
    }
}
