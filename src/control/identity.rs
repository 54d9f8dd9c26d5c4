//! Job identity: the name pg_flink gives a pipeline's Flink jobs, and how the worker tells its
//! own jobs from everybody else's in `GET /jobs/overview`.
//!
//! A job is named `pg_flink/<system identifier>/<database oid>/<database name>/<pipeline>/v<version>`:
//! the Postgres instance (`pg_control_system().system_identifier`, unique per `initdb` and kept
//! by physical replicas), the database (its oid and its name; `/` and `%` in the name are
//! percent-encoded so the name is one path segment) and the pipeline version. A job is *ours*
//! when its instance and database name are ours: a database restored under the same name in the
//! same instance adopts its jobs, while a copy restored under another name, or a second instance
//! sharing the Flink cluster, never touches them. The oid tells a dropped database's jobs from a
//! later database of the same name (the launcher's cleanup). Built here only.
use std::fmt;

/// This Postgres instance and database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub system_identifier: u64,
    pub oid: u32,
    pub name: String,
}

/// A job name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobName {
    pub system_identifier: u64,
    pub database_oid: u32,
    pub database: String,
    pub pipeline: String,
    pub version: i32,
}

fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%25", "%")
}

impl Database {
    /// `pg_flink/<sysid>/<oid>/<name>/`: every job of this database starts with it.
    pub fn prefix(&self) -> String {
        format!(
            "pg_flink/{}/{}/{}/",
            self.system_identifier,
            self.oid,
            escape(&self.name)
        )
    }

    /// The Flink job name of one pipeline version.
    pub fn job_name(&self, pipeline: &str, version: i32) -> String {
        format!("{}{pipeline}/v{version}", self.prefix())
    }

    /// Whether a job (by its Flink name) belongs to this database: same instance, same
    /// database name (the oid may differ after a restore under the same name).
    pub fn owns(&self, job: &JobName) -> bool {
        job.system_identifier == self.system_identifier && job.database == self.name
    }
}

/// Tells, without allocating, which pipeline of one database a Flink job name belongs to (a
/// tick looks at every job of every cluster; [`JobName::parse`] allocates).
#[derive(Debug, Clone)]
pub struct Owner {
    /// `pg_flink/<sysid>/`
    instance: String,
    /// The database name as job names carry it (escaped), and as it is.
    escaped: String,
    name: String,
}

impl Owner {
    pub fn new(db: &Database) -> Self {
        Owner {
            instance: format!("pg_flink/{}/", db.system_identifier),
            escaped: escape(&db.name),
            name: db.name.clone(),
        }
    }

    /// The pipeline a job of this database runs, as [`JobName::parse`] and
    /// [`Database::owns`] would decide it (same instance, same database name, any oid).
    pub fn pipeline_of<'a>(&self, job_name: &'a str) -> Option<&'a str> {
        let rest = job_name.strip_prefix(self.instance.as_str())?;
        let mut parts = rest.split('/');
        let (oid, db, pipeline, version) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || pipeline.is_empty() {
            return None;
        }
        oid.parse::<u32>().ok()?;
        version.strip_prefix('v')?.parse::<i32>().ok()?;
        let same_db = db == self.escaped || (db.contains('%') && unescape(db) == self.name);
        same_db.then_some(pipeline)
    }
}

impl JobName {
    /// Parses a Flink job name; None for jobs pg_flink did not name.
    pub fn parse(name: &str) -> Option<JobName> {
        let parts: Vec<&str> = name.split('/').collect();
        let [tag, sysid, oid, db, pipeline, version] = parts.as_slice() else {
            return None;
        };
        if *tag != "pg_flink" || pipeline.is_empty() {
            return None;
        }
        Some(JobName {
            system_identifier: sysid.parse().ok()?,
            database_oid: oid.parse().ok()?,
            database: unescape(db),
            pipeline: pipeline.to_string(),
            version: version.strip_prefix('v')?.parse().ok()?,
        })
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = Database {
            system_identifier: self.system_identifier,
            oid: self.database_oid,
            name: self.database.clone(),
        };
        f.write_str(&db.job_name(&self.pipeline, self.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn db(name: &str) -> Database {
        Database {
            system_identifier: 7_300_000_000_000_000_001,
            oid: 16384,
            name: name.into(),
        }
    }

    #[test]
    fn job_names_carry_instance_database_and_version() {
        let d = db("app");
        assert_eq!(
            d.job_name("p", 3),
            "pg_flink/7300000000000000001/16384/app/p/v3"
        );
        let j = JobName::parse(&d.job_name("p", 3)).unwrap();
        assert_eq!((j.pipeline.as_str(), j.version), ("p", 3));
        assert!(d.owns(&j));
    }

    #[test]
    fn copies_and_other_instances_are_not_ours_a_same_name_restore_is() {
        let j = JobName::parse(&db("app").job_name("p", 1)).unwrap();
        assert!(!db("app_copy").owns(&j));
        let other_instance = Database {
            system_identifier: 1,
            ..db("app")
        };
        assert!(!other_instance.owns(&j));
        let restored = Database {
            oid: 99999,
            ..db("app")
        };
        assert!(restored.owns(&j));
    }

    #[test]
    fn foreign_names_do_not_parse() {
        for n in [
            "insert-into_default_catalog.default_database.sink",
            "pg_flink/app/p/v1",
            "pg_flink/x/1/app/p/v1",
            "pg_flink/1/1/app/p/1",
            "pg_flink/1/1/app//v1",
        ] {
            assert_eq!(JobName::parse(n), None, "{n}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x1d_e171),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn any_database_name_round_trips(name in "[a-zA-Z0-9_/% .-]{1,40}", pipeline in "[A-Za-z_][A-Za-z0-9_.-]{0,20}", v in 1i32..10000) {
            let d = db(&name);
            let j = JobName::parse(&d.job_name(&pipeline, v)).unwrap();
            prop_assert_eq!(&j.database, &name);
            prop_assert_eq!(&j.pipeline, &pipeline);
            prop_assert_eq!(j.version, v);
            prop_assert!(d.owns(&j));
            prop_assert_eq!(j.to_string(), d.job_name(&pipeline, v));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]
        /// The allocation-free matcher decides exactly what parse + owns decide, for names of
        /// this database, of others, of other instances, and for arbitrary strings.
        #[test]
        fn owner_matches_parse_and_owns(
            ours in "[a-z%/A-F0-9_]{1,12}",
            other in "[a-z%/A-F0-9_]{1,12}",
            pipeline in "[a-z_0-9]{0,8}",
            version in -3i32..5,
            noise in "[pglink_/%v0-9a-z]{0,40}",
            pick in 0u8..5,
        ) {
            let d = db(&ours);
            let name = match pick {
                0 => d.job_name(&pipeline, version),
                1 => db(&other).job_name(&pipeline, version),
                2 => Database { system_identifier: 9, ..db(&ours) }.job_name(&pipeline, version),
                3 => d.job_name(&pipeline, version).to_lowercase(),
                _ => noise.clone(),
            };
            let expected = JobName::parse(&name)
                .filter(|j| d.owns(j))
                .map(|j| j.pipeline);
            prop_assert_eq!(Owner::new(&d).pipeline_of(&name).map(str::to_string), expected, "name {}", name);
        }
    }
}
