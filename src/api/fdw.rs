//! SQL entry points of the foreign-data wrappers (handlers and validators).
use pgrx::prelude::*;

#[pg_schema]
mod flink {
    use crate::fdw::elasticsearch::EsFdw;
    use crate::fdw::kafka::KafkaFdw;
    use crate::fdw::pg;
    use pgrx::prelude::*;

    /// FDW handler of `pg_flink_kafka`.
    #[pg_extern(name = "kafka_fdw_handler")]
    fn kafka_fdw_handler() -> supabase_wrappers::FdwRoutine {
        pg::routine::<KafkaFdw>()
    }

    /// Option validator of `pg_flink_kafka`.
    #[pg_extern(name = "kafka_fdw_validator")]
    fn kafka_fdw_validator(options: Vec<Option<String>>, catalog: Option<pg_sys::Oid>) {
        pg::validate::<KafkaFdw>(options, catalog)
    }

    /// FDW handler of `pg_flink_elasticsearch`.
    #[pg_extern(name = "elasticsearch_fdw_handler")]
    fn elasticsearch_fdw_handler() -> supabase_wrappers::FdwRoutine {
        pg::routine::<EsFdw>()
    }

    /// Option validator of `pg_flink_elasticsearch`.
    #[pg_extern(name = "elasticsearch_fdw_validator")]
    fn elasticsearch_fdw_validator(options: Vec<Option<String>>, catalog: Option<pg_sys::Oid>) {
        pg::validate::<EsFdw>(options, catalog)
    }
}
