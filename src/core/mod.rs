//! Pure core of pg_flink: no pgrx, no backend state. Everything here is unit-tested with
//! `cargo test --lib`.
pub mod expr;
pub mod messages;
pub mod quote;
pub mod script;
pub mod urls;
