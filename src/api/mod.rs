//! SQL-callable functions of schema `flink`.
pub mod gateway;
pub mod health;
