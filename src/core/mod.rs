//! Pure core of pg_flink: no pgrx, no backend state. Everything here is unit-tested with
//! `cargo test --lib`.
pub mod catalog;
pub mod flinktype;
pub mod pipeline;
pub mod quote;
pub mod script;
pub mod sources;
pub mod text;
pub mod types;
pub mod urls;
