//! patchbay-registry: connector manifests, package validation and the content-addressed component
//! store. The manifest schema and upload validation (world conformance, signatures) live here;
//! the host's runtime only ever sees components this crate has accepted.
