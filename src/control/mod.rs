//! The control plane: users set a desired state in a transaction; after commit the background
//! worker makes Flink match it and records every transition.
//!
//! - [`state`]: `Desired` and `JobState` (pure; mirrored by a CHECK constraint in SQL);
//! - [`identity`]: job names and the identity prefix by which jobs are recognised (pure);
//! - [`decide`]: the decision for one pipeline, a pure function unit-tested without a cluster;
//! - [`submit`]: what a submission sends (rendered from the pipeline's own datasources; pure);
//! - [`store`]: typed rows read and state changes written by the worker (SPI);
//! - [`launcher`]: the instance's launcher (a worker for every database with pg_flink, cleanup
//!   after DROP DATABASE) and the DROP DATABASE hook; [`registry`]: its files in `$PGDATA`;
//! - [`worker`]: one database's worker loop; [`actions`]: carrying out one decision;
//!   [`cleanup`]: dropped pipelines, orphaned jobs, clusters dropped with cascade;
//! - [`sql`]: the SQL-callable helpers of the control plane (schema `flink_internal`).
pub mod decide;
pub mod identity;
pub mod state;
pub mod submit;

mod actions;
mod cleanup;
pub mod launcher;
mod observe;
pub mod registry;
pub mod sql;
pub mod store;
mod webhook;
pub mod worker;
