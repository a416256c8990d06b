//! Connector manifests.
