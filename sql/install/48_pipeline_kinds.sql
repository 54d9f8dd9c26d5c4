-- 0.3.0: datasource kinds for trying rules without real systems: datagen (a source of
-- generated rows) and print (a sink writing to the TaskManager log).
ALTER TABLE flink.datasource DROP CONSTRAINT datasource_kind_check;
ALTER TABLE flink.datasource ADD CONSTRAINT datasource_kind_check
  CHECK (kind IN ('kafka', 'elasticsearch', 'postgres', 'mysql', 'blackhole', 'datagen', 'print'));
