//! Job identity: the name pg_flink gives a pipeline's Flink jobs, and the prefix by which the
//! worker recognises them in `GET /jobs/overview`. Built here only (the renderer puts the job name
//! into the script's `SET 'pipeline.name'`, the worker records it in `flink.job.job_name`).

/// `pg_flink/<database>/<pipeline>`: every job of the pipeline starts with it.
pub fn identity(database: &str, pipeline: &str) -> String {
    format!("pg_flink/{database}/{pipeline}")
}

/// `pg_flink/<database>/<pipeline>/v<version>`: the Flink job name of one version.
pub fn job_name(database: &str, pipeline: &str, version: i32) -> String {
    format!("{}/v{version}", identity(database, pipeline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_extend_the_identity() {
        assert_eq!(identity("db", "p"), "pg_flink/db/p");
        assert_eq!(job_name("db", "p", 3), "pg_flink/db/p/v3");
        assert!(job_name("db", "p", 3).starts_with(&format!("{}/v", identity("db", "p"))));
    }
}
