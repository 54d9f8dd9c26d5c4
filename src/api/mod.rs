//! SQL-callable functions of schema `flink`.
pub mod catalog;
pub mod fdw;
pub mod gateway;
pub mod health;
pub mod pipeline;
pub mod preview;
