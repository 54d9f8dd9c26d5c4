//! The pipeline templates, one file each: its params types, its render function (tables and
//! INSERT into the rendering context) and its tests, including the golden scripts of its
//! documented examples (tests/pipelines/examples.json → tests/golden/<name>.sql).
pub mod branches;
pub mod cep;
pub mod deduplicate;
pub mod filter_alert;
pub mod interval_join;
pub mod lookup_join;
pub mod sql;
pub mod sync;
pub mod temporal_join;
pub mod top_n;
pub mod window_aggregate;
