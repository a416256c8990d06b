//! The smallest connector: `#![no_std]`, bindings straight from wit-bindgen (not the SDK), and
//! constant `lifecycle` answers. It imports no functions at all (no WASI), so it measures the
//! host's own per-call cost.

#![no_std]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "connector",
});

use exports::patchbay::connector::lifecycle::{CredentialCheck, Guest, HealthReport, HealthStatus};
use patchbay::connector::types::ConnectorError;

struct Trivial;

impl Guest for Trivial {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        Ok(HealthReport { status: HealthStatus::Healthy, message: None })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        Ok(CredentialCheck { valid: true, account: None, message: None })
    }
}

export!(Trivial);

/// Allocator and panic handler, which `no_std` leaves to the component.
#[cfg(target_arch = "wasm32")]
mod runtime {
    use core::alloc::{GlobalAlloc, Layout};
    use core::arch::wasm32;
    use core::cell::Cell;
    use core::ptr;

    const PAGE: usize = 64 * 1024;

    /// A bump allocator over pages taken with `memory.grow`; it never frees. Every call runs in
    /// a fresh instance, so its footprint is bounded by what one call allocates.
    struct Bump {
        next: Cell<usize>,
        end: Cell<usize>,
    }

    // SAFETY: a component instance is single-threaded.
    unsafe impl Sync for Bump {}

    #[global_allocator]
    static ALLOCATOR: Bump = Bump { next: Cell::new(0), end: Cell::new(0) };

    fn align_up(addr: usize, align: usize) -> Option<usize> {
        Some(addr.checked_add(align - 1)? & !(align - 1))
    }

    // SAFETY: returned blocks are fresh, aligned, never handed out twice, and the memory
    // behind them is never shrunk.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if self.end.get() != 0
                && let Some(start) = align_up(self.next.get(), layout.align())
                && let Some(next) = start.checked_add(layout.size())
                && next <= self.end.get()
            {
                self.next.set(next);
                return start as *mut u8;
            }
            let Some(bytes) = layout.size().checked_add(layout.align()) else {
                return ptr::null_mut();
            };
            let pages = bytes.div_ceil(PAGE);
            let previous = wasm32::memory_grow(0, pages);
            if previous == usize::MAX {
                return ptr::null_mut();
            }
            let base = previous * PAGE;
            let Some(start) = align_up(base, layout.align()) else {
                return ptr::null_mut();
            };
            self.next.set(start + layout.size());
            self.end.set(base + pages * PAGE);
            start as *mut u8
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        wasm32::unreachable()
    }
}
