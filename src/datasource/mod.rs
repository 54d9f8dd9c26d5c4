//! Datasources: the external systems pipelines read and write and the FDWs query.
//!
//! One file per kind ([`kafka`], [`elasticsearch`], [`postgres`], [`mysql`], [`blackhole`],
//! [`datagen`], [`print`]) holds everything
//! about that kind: its option schema and cross-checks, its client calls (connection test,
//! describe, listing), the mapping of its types to Flink types, and the Flink connector
//! (`WITH` options) pipelines render for it. Each kind file implements [`DatasourceKind`] for a
//! unit struct; [`Kind`] is the closed set stored in the catalog and dispatches to those
//! implementations through `dispatch!`, the one place listing every kind.
//!
//! Why a trait rather than a table of kinds: the client calls are async, which a table of
//! function pointers could only hold boxed, and the trait makes the compiler list what a new
//! kind must provide.
//!
//! Shared pieces: [`schema`] (option-schema types and value checks, usable by any option
//! table), [`catalog`] (names, validation, secrets, [`CatalogError`]), [`cluster`] (Flink
//! cluster options) and the client handle [`Source`].
use serde_json::{Map, Value};

/// Runs `$body` with `$k` bound to the implementation of `$kind`.
macro_rules! dispatch {
    ($kind:expr, $k:ident => $body:expr) => {
        match $kind {
            $crate::datasource::Kind::Kafka => {
                type $k = $crate::datasource::kafka::Kafka;
                $body
            }
            $crate::datasource::Kind::Elasticsearch => {
                type $k = $crate::datasource::elasticsearch::Elasticsearch;
                $body
            }
            $crate::datasource::Kind::Postgres => {
                type $k = $crate::datasource::postgres::Postgres;
                $body
            }
            $crate::datasource::Kind::Mysql => {
                type $k = $crate::datasource::mysql::Mysql;
                $body
            }
            $crate::datasource::Kind::Blackhole => {
                type $k = $crate::datasource::blackhole::Blackhole;
                $body
            }
            $crate::datasource::Kind::Datagen => {
                type $k = $crate::datasource::datagen::Datagen;
                $body
            }
            $crate::datasource::Kind::Print => {
                type $k = $crate::datasource::print::Print;
                $body
            }
        }
    };
}

pub mod blackhole;
pub mod catalog;
mod client;
pub mod cluster;
pub mod datagen;
pub mod elasticsearch;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod print;
pub mod schema;

pub use catalog::{
    check_kind, check_name, masked, scrub, validate, CatalogError, ErrorClass, Validated,
};
pub use client::{Column, Described, Source, SourceError, SourceErrorKind};
pub use cluster::validate_cluster_options;

use crate::pipeline::{ConnectorUse, PipelineError};
use schema::OptSpec;

/// Datasource kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kafka,
    Elasticsearch,
    Postgres,
    Mysql,
    Blackhole,
    Datagen,
    Print,
}

pub const KINDS: [&str; 7] = [
    "kafka",
    "elasticsearch",
    "postgres",
    "mysql",
    "blackhole",
    "datagen",
    "print",
];

/// What every datasource kind provides. Implemented in the kind's file.
pub(crate) trait DatasourceKind {
    /// The documented options and secrets (docs/datasources.md).
    const OPTIONS: &'static [OptSpec];

    /// Whether a pipeline may read this kind with change data capture (`cdc: true`).
    const CDC_SOURCE: bool = false;

    /// Whether the kind can only be written to (a pipeline refuses it as a source, and a raw
    /// `sql` pipeline declares its tables as sinks).
    const SINK_ONLY: bool = false;

    /// Whether the kind can only be read from (a pipeline refuses it as a sink).
    const SOURCE_ONLY: bool = false;

    /// Whether a sink of this kind without declared columns takes the query's output columns
    /// (otherwise they are read from the object with `describe`).
    const DERIVES_SINK_COLUMNS: bool = false;

    /// Whether a sink of this kind applies updates by primary key (upsert-kafka, Elasticsearch
    /// document ids, JDBC upserts), so an updating query (e.g. `deduplicate` keeping the last
    /// row) may write to it.
    const ACCEPTS_UPDATES: bool = false;

    /// Checks between validated options and secrets of datasource `ds` (e.g. SASL settings
    /// that only make sense together).
    fn cross_check(
        _ds: &str,
        _options: &Map<String, Value>,
        _secrets: &Map<String, Value>,
    ) -> Result<(), CatalogError> {
        Ok(())
    }

    /// Connects for real; a one-line description of what was found.
    async fn test(src: &Source) -> Result<String, SourceError>;

    /// Columns of `object` (table, index, topic) with their Flink types. `object` is already
    /// checked to be 1-255 printable characters.
    async fn describe(
        src: &Source,
        object: &str,
        sample_size: usize,
    ) -> Result<Described, SourceError>;

    /// The Flink connector options (`WITH (...)`) of a pipeline table on this kind, before the
    /// table's own `connector_options` overrides.
    fn flink_options(table: &ConnectorUse) -> Result<Vec<(String, String)>, PipelineError>;
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "kafka" => Some(Kind::Kafka),
            "elasticsearch" => Some(Kind::Elasticsearch),
            "postgres" => Some(Kind::Postgres),
            "mysql" => Some(Kind::Mysql),
            "blackhole" => Some(Kind::Blackhole),
            "datagen" => Some(Kind::Datagen),
            "print" => Some(Kind::Print),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kafka => "kafka",
            Kind::Elasticsearch => "elasticsearch",
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Blackhole => "blackhole",
            Kind::Datagen => "datagen",
            Kind::Print => "print",
        }
    }

    /// The kind's option schema.
    pub fn spec(self) -> &'static [OptSpec] {
        dispatch!(self, K => K::OPTIONS)
    }

    /// Whether a pipeline may read this kind with change data capture.
    pub fn cdc_source(self) -> bool {
        dispatch!(self, K => K::CDC_SOURCE)
    }

    /// Whether the kind can only be written to.
    pub fn sink_only(self) -> bool {
        dispatch!(self, K => K::SINK_ONLY)
    }

    /// Whether the kind can only be read from.
    pub fn source_only(self) -> bool {
        dispatch!(self, K => K::SOURCE_ONLY)
    }

    /// Whether a sink of this kind takes the query's output columns when none are declared.
    pub fn derives_sink_columns(self) -> bool {
        dispatch!(self, K => K::DERIVES_SINK_COLUMNS)
    }

    /// Whether a sink of this kind applies updates by primary key.
    pub fn accepts_updates(self) -> bool {
        dispatch!(self, K => K::ACCEPTS_UPDATES)
    }

    pub(crate) fn cross_check(
        self,
        ds: &str,
        options: &Map<String, Value>,
        secrets: &Map<String, Value>,
    ) -> Result<(), CatalogError> {
        dispatch!(self, K => K::cross_check(ds, options, secrets))
    }

    /// The Flink connector options of a pipeline table on this kind.
    pub(crate) fn flink_options(
        self,
        table: &ConnectorUse,
    ) -> Result<Vec<(String, String)>, PipelineError> {
        if table.role == crate::pipeline::Role::Source && self.sink_only() {
            return Err(table.error(
                ErrorClass::WrongObjectType,
                "datasource",
                format!(
                    "datasource \"{}\" is {}, which can only be a sink",
                    table.table.datasource,
                    self.as_str()
                ),
                "Flink has no source connector for it: read from a Kafka topic or a Postgres/MySQL table instead.",
            ));
        }
        if table.role == crate::pipeline::Role::Sink && self.source_only() {
            return Err(table.error(
                ErrorClass::WrongObjectType,
                "datasource",
                format!(
                    "datasource \"{}\" is {}, which can only be a source",
                    table.table.datasource,
                    self.as_str()
                ),
                "Write to a Kafka topic, an Elasticsearch index, a Postgres/MySQL table, print or blackhole.",
            ));
        }
        dispatch!(self, K => K::flink_options(table))
    }
}
