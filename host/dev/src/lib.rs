//! patchbay-dev: development aids kept out of the production library — the [`sample`] data
//! source (`patchbay sample-source`, the sync tests and benchmarks) and the [`bench`](mod@bench) harnesses
//! (`patchbay bench`, the ingress benchmark).

#![warn(missing_docs)]

pub mod bench;
pub mod sample;
