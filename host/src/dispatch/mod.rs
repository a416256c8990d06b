//! Outbox delivery: the policy side of at-least-once delivery (the rows themselves live in
//! [`crate::store`], see `store/outbox.rs`).

pub mod retry;
