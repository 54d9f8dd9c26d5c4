"""Foreign-table writes follow the Postgres transaction (docs/kafka-fdw.md and
docs/elasticsearch-fdw.md, "Transactions"), against the stack's real Kafka and Elasticsearch.

Kafka: INSERTs go into one Kafka transaction per Postgres transaction, committed at COMMIT and
aborted at ROLLBACK; read_committed consumers see nothing of a rolled-back transaction (a
read_uncommitted one shows the messages were produced, then aborted). A subtransaction that
produced messages and rolled back dooms the COMMIT.

Elasticsearch: INSERT/UPDATE/DELETE are buffered and sent as bulk requests at COMMIT; ROLLBACK
sends nothing, ROLLBACK TO SAVEPOINT drops exactly the rolled-back writes; bulk requests are
not atomic, so a rejected document fails the COMMIT with the documented partial effect.
"""
import json
import time

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ENV, connect, unique

BROKERS = ENV["PG_FLINK_KAFKA"]
ES = ENV["PG_FLINK_ES_URL"]


def create_topic(name, partitions=1):
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result()
    deadline = time.time() + 20
    while time.time() < deadline:
        md = admin.list_topics(name, timeout=5).topics.get(name)
        if md and len(md.partitions) == partitions and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"topic {name} not ready")


def make_index(name, mapping):
    r = requests.put(f"{ES}/{name}", json={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                           "mappings": mapping}, timeout=30)
    assert r.status_code == 200, r.text


def bulk(index, docs):
    lines = []
    for _id, d in docs:
        lines.append(json.dumps({"index": {"_index": index, "_id": _id}}))
        lines.append(json.dumps(d))
    r = requests.post(f"{ES}/_bulk?refresh=true", data="\n".join(lines) + "\n",
                      headers={"Content-Type": "application/x-ndjson"}, timeout=60)
    r.raise_for_status()
    assert not r.json()["errors"], r.json()["items"][:3]


# ---------------------------------------------------------------------------------------------
# Kafka


def read_topic(topic, partitions=1, isolation="read_committed", wait=15):
    """Every message value (decoded JSON) of `topic` visible at `isolation`, read to the end of
    every partition (the end is the last stable offset for read_committed)."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": unique("it_txn_reader"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, ended = [], set()
    deadline = time.time() + wait
    try:
        while len(ended) < partitions and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(m.partition())
                continue
            out.append(json.loads(m.value()))
    finally:
        c.close()
    assert len(ended) == partitions, f"{topic}: did not reach the end of every partition"
    return out


def ids(msgs):
    return sorted(m["id"] for m in msgs)


@pytest.fixture(scope="module")
def ksrv(test_db):
    with connect(test_db) as c:
        c.execute("DROP SERVER IF EXISTS ktx_it CASCADE")
        c.execute(f"CREATE SERVER ktx_it FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers '{BROKERS}')")
    return "ktx_it"


def ktable(conn, ksrv, partitions=1, opts=""):
    """A fresh topic and a foreign table (id bigint, v text) over it; returns (table, topic)."""
    topic = unique("it_ktx")
    create_topic(topic, partitions)
    name = unique("ktx")
    conn.execute(f"CREATE FOREIGN TABLE {name} (_partition int, id bigint, v text, _offset bigint)"
                 f" SERVER {ksrv} OPTIONS (topic '{topic}'{opts})")
    return name, topic


def test_kafka_rollback_leaves_nothing_visible(conn, ksrv):
    t, topic = ktable(conn, ksrv, partitions=2)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) SELECT g, 'r' || g FROM generate_series(1, 10) g")
    conn.execute("ROLLBACK")
    assert read_topic(topic, 2) == []
    # They were produced (and confirmed) before the ROLLBACK aborted their transaction.
    assert ids(read_topic(topic, 2, "read_uncommitted")) == list(range(1, 11))
    # The wrapper's own scan reads committed messages, and ends at once despite the markers.
    started = time.time()
    assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0
    assert time.time() - started < 5


def test_kafka_commit_makes_rows_visible_and_not_before(conn, ksrv):
    t, topic = ktable(conn, ksrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (1, 'a'), (2, 'b')")
    assert read_topic(topic) == []  # not yet committed
    # No read-your-own-writes: the scan reads committed messages only.
    assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0
    conn.execute("COMMIT")
    assert ids(read_topic(topic)) == [1, 2]
    started = time.time()
    assert conn.execute(f"SELECT id, v FROM {t} ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
    assert time.time() - started < 5
    # Autocommit statements are transactions of their own.
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (3, 'c')")
    assert ids(read_topic(topic)) == [1, 2, 3]
    assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 3


def test_kafka_statements_of_one_transaction_commit_together(conn, ksrv):
    t1, topic1 = ktable(conn, ksrv)
    t2, topic2 = ktable(conn, ksrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t1} (id, v) VALUES (1, 'x')")
    conn.execute(f"INSERT INTO {t1} (id, v) SELECT g, 'y' FROM generate_series(2, 5) g")
    conn.execute(f"INSERT INTO {t2} (id, v) VALUES (10, 'z')")
    assert read_topic(topic1) == [] and read_topic(topic2) == []
    conn.execute("COMMIT")
    assert ids(read_topic(topic1)) == [1, 2, 3, 4, 5]
    assert ids(read_topic(topic2)) == [10]


def test_kafka_failing_statement_then_rollback_leaves_nothing(conn, ksrv):
    t, topic = ktable(conn, ksrv, partitions=2)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (1, 'ok')")
    # Rows 100 and 101 are produced before row 102 fails.
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute(f"INSERT INTO {t} (id, v) SELECT g, (10 / (102 - g))::text FROM generate_series(100, 105) g")
    conn.execute("ROLLBACK")
    assert read_topic(topic, 2) == []
    assert 1 in ids(read_topic(topic, 2, "read_uncommitted"))
    # A delivery failure (no partition 7) fails the statement; ROLLBACK withdraws the rest.
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (2, 'ok')")
    with pytest.raises(psycopg.errors.FdwError) as e:
        conn.execute(f"INSERT INTO {t} (_partition, id) VALUES (7, 3)")
    assert "partition 7" in str(e.value)
    conn.execute("ROLLBACK")
    assert read_topic(topic, 2) == []
    # The backend's producer is still usable afterwards.
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (4, 'after')")
    assert ids(read_topic(topic, 2)) == [4]


def test_kafka_rolled_back_savepoint_dooms_the_commit(conn, ksrv):
    t, topic = ktable(conn, ksrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (1, 'before')")
    conn.execute("SAVEPOINT s")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (2, 'inside')")
    conn.execute("ROLLBACK TO SAVEPOINT s")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        conn.execute("COMMIT")
    assert "subtransaction that was rolled back" in str(e.value) and topic in str(e.value)
    assert "ROLLBACK TO SAVEPOINT" in e.value.diag.message_hint
    assert read_topic(topic) == []
    # An exception block that catches an error after an INSERT is a rolled-back subtransaction.
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute(f"""DO $$ BEGIN
            INSERT INTO {t} (id, v) VALUES (3, 'outer');
            BEGIN
              INSERT INTO {t} (id, v) VALUES (4, 'inner');
              PERFORM 1 / 0;
            EXCEPTION WHEN division_by_zero THEN NULL;
            END;
          END $$""")
    assert read_topic(topic) == []


def test_kafka_savepoints_without_lost_writes_commit(conn, ksrv):
    t, topic = ktable(conn, ksrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (1, 'a')")
    conn.execute("SAVEPOINT s1")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (2, 'b')")
    conn.execute("RELEASE SAVEPOINT s1")  # kept: belongs to the top level now
    conn.execute("SAVEPOINT s2")
    conn.execute("SELECT 1")
    conn.execute("ROLLBACK TO SAVEPOINT s2")  # wrote nothing to Kafka: harmless
    conn.execute("COMMIT")
    assert ids(read_topic(topic)) == [1, 2]


def test_kafka_prepare_transaction_is_refused(conn, ksrv):
    t, topic = ktable(conn, ksrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (1, 'a')")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        conn.execute(f"PREPARE TRANSACTION '{unique('gid')}'")
    assert "cannot PREPARE" in str(e.value)
    assert read_topic(topic) == []


def test_kafka_transactional_false_keeps_the_old_behaviour(conn, ksrv):
    t, topic = ktable(conn, ksrv, opts=", transactional 'false'")
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (id, v) VALUES (1, 'stays')")
    conn.execute("ROLLBACK")
    assert ids(read_topic(topic)) == [1]
    with pytest.raises(psycopg.errors.FdwInvalidOptionName):
        conn.execute(f"ALTER FOREIGN TABLE {t} OPTIONS (SET transactional 'maybe')")


# ---------------------------------------------------------------------------------------------
# Elasticsearch

MAPPING = {"properties": {"name": {"type": "keyword"}, "qty": {"type": "long"}}}


@pytest.fixture(scope="module")
def esrv(test_db):
    with connect(test_db) as c:
        c.execute("DROP SERVER IF EXISTS estx_it CASCADE")
        c.execute(f"CREATE SERVER estx_it FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url '{ES}')")
    yield "estx_it"


def etable(conn, esrv, opts=""):
    """A fresh index holding docs 1..3 (name n<i>, qty i) and a table over it (qty_text maps
    the long field as text, to send values the mapping refuses); returns (table, index)."""
    index = unique("it_estx")
    make_index(index, MAPPING)
    bulk(index, [(str(i), {"name": f"n{i}", "qty": i}) for i in (1, 2, 3)])
    name = unique("estx")
    conn.execute(f"CREATE FOREIGN TABLE {name} (_id text, name text, qty bigint,"
                 f" qty_text text OPTIONS (field 'qty')) SERVER {esrv} OPTIONS (index '{index}'{opts})")
    return name, index


def es_count(index):
    requests.post(f"{ES}/{index}/_refresh", timeout=30).raise_for_status()
    return requests.get(f"{ES}/{index}/_count", timeout=30).json()["count"]


def es_source(index, _id):
    r = requests.get(f"{ES}/{index}/_doc/{_id}", timeout=30)
    return r.json()["_source"] if r.status_code == 200 else None


def test_es_rollback_leaves_the_index_unchanged(conn, esrv):
    t, index = etable(conn, esrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('4', 'n4', 4)")
    assert conn.execute(f"UPDATE {t} SET qty = 100 WHERE _id = '1'").rowcount == 1
    assert conn.execute(f"DELETE FROM {t} WHERE _id = '2'").rowcount == 1
    assert es_count(index) == 3  # nothing sent yet
    conn.execute("ROLLBACK")
    assert es_count(index) == 3
    assert es_source(index, "1") == {"name": "n1", "qty": 1}
    assert es_source(index, "2") == {"name": "n2", "qty": 2}
    assert es_source(index, "4") is None


def test_es_commit_applies_every_write(conn, esrv):
    t, index = etable(conn, esrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('4', 'n4', 4)")
    conn.execute(f"UPDATE {t} SET qty = 100 WHERE _id = '1'")
    conn.execute(f"DELETE FROM {t} WHERE _id = '2'")
    # No read-your-own-writes: Elasticsearch has not seen the buffered writes.
    assert conn.execute(f"SELECT count(*) FROM {t} WHERE _id = '4'").fetchone()[0] == 0
    conn.execute("COMMIT")
    assert es_count(index) == 3
    assert es_source(index, "1") == {"name": "n1", "qty": 100}
    assert es_source(index, "2") is None
    assert es_source(index, "4") == {"name": "n4", "qty": 4}
    # refresh 'wait_for' (default): searchable when COMMIT returns.
    assert conn.execute(f"SELECT _id, qty FROM {t} ORDER BY _id").fetchall() == [("1", 100), ("3", 3), ("4", 4)]


def test_es_rejected_document_fails_the_commit(conn, esrv):
    # One bulk request (batch_size 1000): the valid action of the request is applied.
    t, index = etable(conn, esrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty_text) VALUES ('g1', 'good', '5'), ('bad', 'x', 'not a number')")
    conn.execute(f"DELETE FROM {t} WHERE _id = '3'")
    with pytest.raises(psycopg.errors.DataException) as e:
        conn.execute("COMMIT")
    msg = str(e.value)
    assert "rejected 1 of the 3 buffered action(s)" in msg and t in msg and index in msg
    assert '_id "bad": document_parsing_exception' in msg or '_id "bad": mapper_parsing_exception' in msg
    assert "2 action(s) were applied" in e.value.diag.message_detail
    assert es_source(index, "g1") == {"name": "good", "qty": "5"}
    assert es_source(index, "bad") is None
    assert es_source(index, "3") is None
    # batch_size 1: requests before the rejected one are applied, later ones are not sent.
    t, index = etable(conn, esrv, opts=", batch_size '1'")
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty_text) VALUES ('a1', 'a', '1'), ('bad', 'x', 'nan?'), ('a3', 'c', '3')")
    with pytest.raises(psycopg.errors.DataException) as e:
        conn.execute("COMMIT")
    assert "1 action(s) were applied (1 by earlier requests, 0 by the request with the rejected ones) and 1 were not sent" \
        in e.value.diag.message_detail
    assert es_source(index, "a1") is not None
    assert es_source(index, "a3") is None
    assert es_count(index) == 4
    # The session goes on.
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('a4', 'd', 4)")
    assert es_source(index, "a4") == {"name": "d", "qty": 4}


def test_es_savepoint_rollback_discards_its_writes(conn, esrv):
    t, index = etable(conn, esrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('s1', 'kept', 1)")
    conn.execute("SAVEPOINT a")
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('s2', 'dropped', 2)")
    conn.execute("SAVEPOINT b")
    conn.execute(f"UPDATE {t} SET qty = 99 WHERE _id = '1'")
    conn.execute("RELEASE SAVEPOINT b")  # now part of a
    conn.execute("ROLLBACK TO SAVEPOINT a")  # drops s2 and the UPDATE
    conn.execute("SAVEPOINT c")
    conn.execute(f"DELETE FROM {t} WHERE _id = '2'")
    conn.execute("RELEASE SAVEPOINT c")  # kept
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('s3', 'kept', 3)")
    conn.execute("COMMIT")
    assert es_source(index, "s1") == {"name": "kept", "qty": 1}
    assert es_source(index, "s2") is None
    assert es_source(index, "s3") == {"name": "kept", "qty": 3}
    assert es_source(index, "1") == {"name": "n1", "qty": 1}
    assert es_source(index, "2") is None
    # An exception block that catches an error discards the block's writes only.
    conn.execute(f"""DO $$ BEGIN
        INSERT INTO {t} (_id, name, qty) VALUES ('d1', 'kept', 1);
        BEGIN
          INSERT INTO {t} (_id, name, qty) VALUES ('d2', 'dropped', 2);
          PERFORM 1 / 0;
        EXCEPTION WHEN division_by_zero THEN NULL;
        END;
      END $$""")
    assert es_source(index, "d1") is not None and es_source(index, "d2") is None


def test_es_buffer_is_bounded(conn, esrv):
    t, index = etable(conn, esrv, opts=", max_buffered_bytes '20000'")
    conn.execute("BEGIN")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded) as e:
        conn.execute(f"INSERT INTO {t} (_id, name) SELECT 'big' || g, repeat('x', 1000) FROM generate_series(1, 100) g")
    assert "max_buffered_bytes" in str(e.value) and t in str(e.value)
    assert "transactional 'false'" in e.value.diag.message_hint
    conn.execute("ROLLBACK")
    assert es_count(index) == 3
    with pytest.raises(psycopg.errors.FdwInvalidOptionName):
        conn.execute(f"ALTER FOREIGN TABLE {t} OPTIONS (SET max_buffered_bytes '0')")


def test_es_transactional_false_sends_during_the_statement(conn, esrv):
    t, index = etable(conn, esrv, opts=", transactional 'false'")
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('nt', 'sent', 1)")
    assert conn.execute(f"SELECT count(*) FROM {t} WHERE _id = 'nt'").fetchone()[0] == 1
    conn.execute("ROLLBACK")
    assert es_source(index, "nt") == {"name": "sent", "qty": 1}
    with pytest.raises(psycopg.errors.DataException) as e:  # rejected at the statement, as before
        conn.execute(f"INSERT INTO {t} (_id, qty_text) VALUES ('bad', 'x')")
    assert "rejected 1 of 1 document(s)" in str(e.value)


def test_es_prepare_transaction_is_refused(conn, esrv):
    t, index = etable(conn, esrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {t} (_id, name, qty) VALUES ('p', 'p', 1)")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        conn.execute(f"PREPARE TRANSACTION '{unique('gid')}'")
    assert "cannot PREPARE" in str(e.value)
    assert es_source(index, "p") is None


# ---------------------------------------------------------------------------------------------
# Both


def test_kafka_and_es_in_one_transaction(conn, ksrv, esrv):
    kt, topic = ktable(conn, ksrv)
    et, index = etable(conn, esrv)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {kt} (id, v) VALUES (1, 'k')")
    conn.execute(f"INSERT INTO {et} (_id, name, qty) VALUES ('b1', 'e', 1)")
    conn.execute("ROLLBACK")
    assert read_topic(topic) == [] and es_source(index, "b1") is None
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {kt} (id, v) VALUES (2, 'k')")
    conn.execute(f"INSERT INTO {et} (_id, name, qty) VALUES ('b2', 'e', 2)")
    conn.execute("COMMIT")
    assert ids(read_topic(topic)) == [2] and es_source(index, "b2") == {"name": "e", "qty": 2}
    # Elasticsearch is sent first at COMMIT: a rejected document stops the commit before the
    # Kafka transaction is committed.
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {kt} (id, v) VALUES (3, 'k')")
    conn.execute(f"INSERT INTO {et} (_id, qty_text) VALUES ('b3', 'not a number')")
    with pytest.raises(psycopg.errors.DataException):
        conn.execute("COMMIT")
    assert ids(read_topic(topic)) == [2]
