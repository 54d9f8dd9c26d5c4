//! Pure core of pg_flink: no pgrx, no backend state. Everything here is unit-tested with
//! `cargo test --lib`.
pub mod control;
pub mod quote;
pub mod rest;
pub mod script;
pub mod text;
pub mod urls;
