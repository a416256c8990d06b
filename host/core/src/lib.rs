//! patchbay-core: the vocabulary every layer of the host shares, and nothing else.
//!
//! - [`clock`]: the one clock (unix milliseconds as `i64`) and an injectable [`Clock`];
//! - [`ids`]: prefixed random identifiers;
//! - [`Scope`]: which tenant and installation something runs for;
//! - [`error`]: the domain [`Error`] with its [`ErrorKind`]s — services return it, only the API
//!   turns it into HTTP;
//! - [`log`], [`event`], [`outcome`], [`retry`]: operation-log entries, emitted events, how calls
//!   and delivery attempts end and when they are tried again;
//! - [`timefmt`]: RFC 3339 and relative times;
//! - [`string_enum!`]: enums with one fixed spelling per variant.
//!
//! This crate depends on no other patchbay crate; every other host crate depends on it.

#![warn(missing_docs)]

pub mod clock;
pub mod enums;
pub mod error;
pub mod event;
pub mod ids;
pub mod log;
pub mod outcome;
pub mod retry;
pub mod scope;
pub mod timefmt;

pub use clock::{Clock, SharedClock, now_ms};
pub use error::{Error, ErrorKind, Result};
pub use ids::new_id;
pub use scope::Scope;

#[doc(hidden)]
pub use serde as __serde;
