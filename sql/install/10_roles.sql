-- pg_flink install script, part: roles and schemas
-- Runs at the end of CREATE EXTENSION, after the Rust functions (parts are joined in file-name order by build.rs).

-- Never drops user data: catalog tables are registered with pg_extension_config_dump, so
-- pg_dump keeps their rows, and upgrade scripts (sql/pg_flink--X--Y.sql) only ALTER them.

COMMENT ON SCHEMA flink IS 'pg_flink: Apache Flink control plane and query surface';
COMMENT ON SCHEMA flink_internal IS 'pg_flink internals: helpers of the SQL API and the background worker; not for direct use';

-- ------------------------------------------------------------------------------------------
-- Roles (cluster-wide; created once, kept by DROP EXTENSION)
--   flink_admin : manages clusters and datasources, reads secrets
--   flink_reader: reads the catalog views (secrets masked) and status
-- ------------------------------------------------------------------------------------------
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'flink_reader') THEN
    CREATE ROLE flink_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'flink_admin') THEN
    CREATE ROLE flink_admin NOLOGIN;
  END IF;
  IF NOT pg_catalog.pg_has_role('flink_admin', 'flink_reader', 'MEMBER') THEN
    GRANT flink_reader TO flink_admin;
  END IF;
END
$roles$;
