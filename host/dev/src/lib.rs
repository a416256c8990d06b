//! patchbay-dev: development aids kept out of the production library — the [`sample`] data
//! source (`patchbay sample-source`, the sync tests and benchmarks) and the [`bench`] harnesses
//! (`patchbay bench`, the ingress benchmark).

pub mod bench;
pub mod sample;
