BEGIN;
SELECT flink.stop(:'pipeline', with_savepoint => false);
COMMIT;
