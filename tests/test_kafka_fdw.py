"""Kafka foreign tables (pg_flink_kafka) against the stack's real Kafka broker."""
import json
import re
import threading
import time

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ENV, connect, explain, stack, unique

BROKERS = ENV["PG_FLINK_KAFKA"]
# Message i has timestamp BASE_MS + i s. Recent on purpose: Kafka's time retention (7 days)
# deletes older messages at its next check, whatever their offsets.
BASE_MS = (int(time.time()) - 3600) * 1000
N = 300


def create_topic(name, partitions=3, config=None):
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(name, partitions, 1, config=config or {})]).values():
        f.result()
    # Metadata settles within a moment; wait until every partition has a leader.
    deadline = time.time() + 20
    while time.time() < deadline:
        md = admin.list_topics(name, timeout=5).topics.get(name)
        if md and len(md.partitions) == partitions and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"topic {name} not ready")


def produce(topic, messages):
    p = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    for m in messages:
        p.produce(topic, **m)
    assert p.flush(30) == 0


def doc(i):
    return {"id": i, "name": f"n{i}", "amount": i * 1.5, "tags": [f"t{i}", "x"], "nested": {"x": i * 2}}


@pytest.fixture(scope="module")
def kdb(test_db):
    """A 3-partition topic: message i goes to partition i % 3 (offset i // 3), key k<i>,
    header trace=t<i>, timestamp BASE_MS + i s; and a server + table over it."""
    topic = unique("it_kfdw")
    create_topic(topic)
    produce(topic, [dict(value=json.dumps(doc(i)).encode(), key=f"k{i}".encode(), partition=i % 3,
                         timestamp=BASE_MS + i * 1000, headers=[("trace", f"t{i}".encode())])
                    for i in range(N)])
    with connect(test_db) as c:
        c.execute("DROP SERVER IF EXISTS kfdw_it CASCADE")
        c.execute(f"CREATE SERVER kfdw_it FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers '{BROKERS}')")
        c.execute(f"""CREATE FOREIGN TABLE kt (
            _partition int, _offset bigint, _timestamp timestamptz, _key text, _headers jsonb,
            id int, name text, amount float8, tags text[], x bigint OPTIONS (path '/nested/x'),
            nested jsonb, _error text) SERVER kfdw_it OPTIONS (topic '{topic}')""")
    return topic


def fetched(plan):
    m = re.search(r"Messages Fetched: (\d+)", plan)
    assert m, plan
    return int(m.group(1))


def test_columns_metadata_keys_headers_and_timestamps(conn, kdb):
    assert conn.execute("SELECT count(*) FROM kt").fetchone()[0] == N
    row = conn.execute("SELECT _partition, _offset, _key, _headers, _timestamp = to_timestamp(%s / 1000.0),"
                       " id, name, amount, tags, x, nested, _error FROM kt WHERE id = 10",
                       (BASE_MS + 10_000,)).fetchone()
    assert row == (1, 3, "k10", {"trace": "t10"}, True, 10, "n10", 15.0, ["t10", "x"], 20, {"x": 20}, None)
    # Keys as bytes, and the whole value as jsonb.
    conn.execute("DROP FOREIGN TABLE IF EXISTS kt_raw")
    conn.execute(f"CREATE FOREIGN TABLE kt_raw (_key bytea, _value jsonb, _offset bigint, _partition int)"
                 f" SERVER kfdw_it OPTIONS (topic '{kdb}')")
    assert conn.execute("SELECT _key, _value->>'name' FROM kt_raw WHERE _partition = 1 AND _offset = 3").fetchone() == (b"k10", "n10")
    # Whole-table read matches what was produced, message for message.
    rows = conn.execute("SELECT id, _partition, _offset, _key FROM kt ORDER BY id").fetchall()
    assert rows == [(i, i % 3, i // 3, f"k{i}") for i in range(N)]


# (WHERE clause, messages the ranges hold, python predicate on i)
PUSHDOWN = [
    ("_partition = 1", 100, lambda i: i % 3 == 1),
    ("_partition IN (0, 2)", 200, lambda i: i % 3 in (0, 2)),
    ("_partition = ANY(ARRAY[2])", 100, lambda i: i % 3 == 2),
    ("_offset >= 90", 30, lambda i: i // 3 >= 90),
    ("_offset > 95 AND _offset <= 97", 6, lambda i: 95 < i // 3 <= 97),
    ("_offset BETWEEN 5 AND 9 AND _partition = 2", 5, lambda i: 5 <= i // 3 <= 9 and i % 3 == 2),
    ("_offset = 42", 3, lambda i: i // 3 == 42),
    ("_offset < 3", 9, lambda i: i // 3 < 3),
    ("(_partition = 0 AND _offset >= 98) OR (_partition = 1 AND _offset < 2)", 4,
     lambda i: (i % 3 == 0 and i // 3 >= 98) or (i % 3 == 1 and i // 3 < 2)),
    (f"_timestamp >= to_timestamp({(BASE_MS + 290_000) / 1000})", 10, lambda i: i >= 290),
    (f"_timestamp < to_timestamp({(BASE_MS + 9_000) / 1000})", 9, lambda i: i < 9),
    (f"_timestamp BETWEEN to_timestamp({(BASE_MS + 30_000) / 1000}) AND to_timestamp({(BASE_MS + 35_000) / 1000})"
     " AND _partition = 0", 2, lambda i: 30 <= i <= 35 and i % 3 == 0),
    ("_partition = 1 AND _offset > 1000", 0, lambda i: False),
]


@pytest.mark.parametrize("where,in_ranges,pred", PUSHDOWN, ids=[p[0][:50] for p in PUSHDOWN])
def test_pushdown_reads_only_the_ranges_it_needs(conn, kdb, where, in_ranges, pred):
    got = sorted(r[0] for r in conn.execute(f"SELECT id FROM kt WHERE {where}").fetchall())
    assert got == [i for i in range(N) if pred(i)]
    plan = explain(conn, f"SELECT id FROM kt WHERE {where}")
    assert "Kafka Filter:" in plan
    assert fetched(plan) == in_ranges, plan
    assert f"Messages In Ranges: {in_ranges}" in plan


def test_explain_verbose_shows_ranges_without_running(conn, kdb):
    plan = explain(conn, "SELECT * FROM kt WHERE _partition = 1 AND _offset >= 10 AND _offset < 20", analyze=False)
    assert "Kafka Topic: " + kdb in plan
    assert "Partition Ranges: 1:[10,20)" in plan
    assert "Messages Fetched" not in plan


def test_unpushed_filters_are_rechecked_and_limit_stops_early(conn, kdb):
    plan = explain(conn, "SELECT id FROM kt WHERE name = 'n5'")
    assert "Kafka Filter" not in plan and fetched(plan) == N
    assert conn.execute("SELECT id FROM kt WHERE name = 'n5'").fetchall() == [(5,)]
    plan = explain(conn, "SELECT id FROM kt LIMIT 5")
    assert fetched(plan) == 5, plan
    assert len(conn.execute("SELECT * FROM kt LIMIT 5").fetchall()) == 5


def test_bad_messages_in_all_three_modes(conn, kdb):
    topic = unique("it_kbad")
    create_topic(topic, 1)
    produce(topic, [dict(value=b'{"id": 1, "n": "a"}'), dict(value=b"not json at all"),
                    dict(value=b'{"id": "many", "n": "b"}'), dict(value=b'{"id": 4, "n": "d"}'),
                    dict(value=None, key=b"tombstone")])
    for mode in ("null", "skip", "error"):
        conn.execute(f"DROP FOREIGN TABLE IF EXISTS kbad_{mode}")
        conn.execute(f"CREATE FOREIGN TABLE kbad_{mode} (_offset bigint, id int, n text, _error text) "
                     f"SERVER kfdw_it OPTIONS (topic '{topic}', on_error '{mode}')")
    rows = conn.execute("SELECT _offset, id, n, _error FROM kbad_null ORDER BY _offset").fetchall()
    assert [r[:3] for r in rows] == [(0, 1, "a"), (1, None, None), (2, None, "b"), (3, 4, "d"), (4, None, None)]
    assert rows[0][3] is None and rows[3][3] is None and rows[4][3] is None
    assert rows[1][3].startswith("partition 0 offset 1: value is not JSON")
    assert rows[2][3] == 'partition 0 offset 2: field id: value "many" does not fit type integer'
    assert conn.execute("SELECT _offset FROM kbad_skip ORDER BY 1").fetchall() == [(0,), (3,), (4,)]
    # _error means the same whatever else the query reads (it used to depend on the projection).
    bad = [(1,), (2,)]
    assert conn.execute("SELECT _offset FROM kbad_null WHERE _error IS NOT NULL ORDER BY 1").fetchall() == bad
    assert conn.execute("SELECT count(*) FROM kbad_null WHERE _error IS NOT NULL").fetchone()[0] == 2
    assert conn.execute("SELECT _offset, _error IS NOT NULL FROM kbad_null ORDER BY 1").fetchall() == \
        [(0, False), (1, True), (2, True), (3, False), (4, False)]
    with pytest.raises(psycopg.errors.InvalidTextRepresentation) as e:  # as '…'::jsonb would
        conn.execute("SELECT * FROM kbad_error").fetchall()
    assert f'topic "{topic}" partition 0 offset 1: value is not JSON' in str(e.value)
    assert e.value.diag.message_hint and "on_error" in e.value.diag.message_hint


def test_values_postgres_would_refuse_are_errors_not_silent_changes(conn, kdb):
    topic = unique("it_kstrict")
    create_topic(topic, 1)
    bad = [b'{"i8": 9223372036854775808}', b'{"i8": 1e19}', b'{"d": "2024-02-30"}', b'{"f8": 1e400}',
           b'{"f4": 1e39}', b'{"t": "a\\u0000b"}', b'42', b'[1, 2]']
    good = [b'{"i8": 9223372036854775807, "d": "2024-02-29", "f8": 1.5, "f4": 1e38, "t": "ok",'
            b' "ts": "2024-05-01T10:00:00.1234567Z"}']
    produce(topic, [dict(value=v) for v in bad + good])
    for mode in ("null", "skip"):
        conn.execute(f"CREATE FOREIGN TABLE kstrict_{mode} (_offset bigint, i8 bigint, d date, f8 float8, f4 real,"
                     f" t text, ts timestamptz, _error text) SERVER kfdw_it OPTIONS (topic '{topic}', on_error '{mode}')")
    rows = conn.execute("SELECT _offset, _error FROM kstrict_null ORDER BY _offset").fetchall()
    assert [r[0] for r in rows if r[1] is not None] == list(range(len(bad))), rows
    assert rows[-1][1] is None
    # A 7-digit fraction rounds as Postgres' own input does.
    ts = conn.execute("SELECT ts = '2024-05-01T10:00:00.123457Z'::timestamptz, i8, d FROM kstrict_null"
                      " WHERE _error IS NULL").fetchone()
    assert ts == (True, 9223372036854775807, __import__("datetime").date(2024, 2, 29))
    assert conn.execute("SELECT _offset FROM kstrict_skip").fetchall() == [(len(bad),)]


def test_insert_produces_confirmed_messages_read_back_by_a_real_consumer(conn, kdb):
    topic = unique("it_kins")
    create_topic(topic, 2)
    conn.execute(f"CREATE FOREIGN TABLE kins (_partition int, _key text, _headers jsonb, _timestamp timestamptz,"
                 f" id bigint, city text OPTIONS (path '/where/city'), _offset bigint, _error text)"
                 f" SERVER kfdw_it OPTIONS (topic '{topic}')")
    base = int(time.time()) - 600
    n = conn.execute("""INSERT INTO kins (_partition, _key, _headers, _timestamp, id, city)
                        SELECT g %% 2, 'key' || g, jsonb_build_object('src', 'pg', 'n', g::text),
                               to_timestamp(%s + g), g, CASE WHEN g = 3 THEN NULL ELSE 'c' || g END
                        FROM generate_series(1, 50) g""", (base,)).rowcount
    assert n == 50
    # Visible once Kafka has written the commit markers (asynchronously, within milliseconds
    # after the commit returned: docs/kafka-fdw.md, Transactions).
    deadline = time.time() + 10
    while True:
        rows = conn.execute("SELECT _partition, _key, _headers, _timestamp = to_timestamp(%s + id), id, city"
                            " FROM kins ORDER BY id", (base,)).fetchall()
        if len(rows) == 50 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert rows[:3] == [(1, "key1", {"src": "pg", "n": "1"}, True, 1, "c1"),
                        (0, "key2", {"src": "pg", "n": "2"}, True, 2, "c2"),
                        (1, "key3", {"src": "pg", "n": "3"}, True, 3, None)]
    assert len(rows) == 50
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": unique("it_reader"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    seen = {}
    deadline = time.time() + 20
    while len(seen) < 50 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            seen[m.key().decode()] = (m.partition(), json.loads(m.value()), dict(m.headers()), m.timestamp()[1])
    c.close()
    assert seen["key4"] == (0, {"id": 4, "where": {"city": "c4"}}, {"src": b"pg", "n": b"4"}, (base + 4) * 1000)
    assert seen["key3"][1] == {"id": 3}


def test_delivery_failure_is_a_sql_error(conn, kdb):
    conn.execute("DROP FOREIGN TABLE IF EXISTS kshort")
    conn.execute(f"CREATE FOREIGN TABLE kshort (_partition int, id int) SERVER kfdw_it"
                 f" OPTIONS (topic '{kdb}', timeout_ms '3000')")
    t = time.time()
    with pytest.raises(psycopg.errors.FdwError) as e:
        conn.execute("INSERT INTO kshort VALUES (7, 1)")
    assert time.time() - t < 10
    assert "were not confirmed" in str(e.value) and "partition 7" in str(e.value)


def test_text_format_and_whole_value_columns(conn, kdb):
    topic = unique("it_ktext")
    create_topic(topic, 1)
    conn.execute(f"CREATE FOREIGN TABLE ktext (line text, _offset bigint) SERVER kfdw_it"
                 f" OPTIONS (topic '{topic}', format 'text')")
    conn.execute("INSERT INTO ktext (line) VALUES ('hello, world'), ('second')")
    assert conn.execute("SELECT _offset, line FROM ktext ORDER BY 1").fetchall() == [(0, "hello, world"), (1, "second")]
    # The whole value as one column: jsonb needs JSON, so these text lines are decoding errors.
    conn.execute(f"CREATE FOREIGN TABLE kwhole (_value jsonb, _error text) SERVER kfdw_it OPTIONS (topic '{topic}')")
    rows = conn.execute("SELECT _value, _error FROM kwhole").fetchall()
    # jsonb_in refuses them, as a cast would.
    assert [r[0] for r in rows] == [None, None] and all("invalid input syntax for type json" in r[1] for r in rows), rows
    conn.execute("ALTER FOREIGN TABLE kwhole OPTIONS (ADD on_error 'error')")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):  # as '…'::jsonb would
        conn.execute("SELECT * FROM kwhole").fetchall()


def test_csv_round_trip(conn, kdb):
    topic = unique("it_kcsv")
    create_topic(topic, 1)
    conn.execute(f"CREATE FOREIGN TABLE kcsv2 (a int, b text, c float8, _error text) SERVER kfdw_it"
                 f" OPTIONS (topic '{topic}', format 'csv')")
    conn.execute("INSERT INTO kcsv2 (a, b, c) VALUES (1, 'x,y', 1.5), (2, 'say \"hi\"', NULL)")
    produce(topic, [dict(value=b"3,plain,notanumber")])
    rows = conn.execute("SELECT a, b, c, _error FROM kcsv2 ORDER BY a").fetchall()
    assert rows[:2] == [(1, "x,y", 1.5, None), (2, 'say "hi"', None, None)]
    assert rows[2][:3] == (3, "plain", None) and "field 3" in rows[2][3]


def test_csv_with_another_delimiter(conn, kdb):
    topic = unique("it_kcsvd")
    create_topic(topic, 1)
    produce(topic, [dict(value=b'1;a,b;2.5'), dict(value=b'2;"x;y";3')])
    conn.execute(f"CREATE FOREIGN TABLE kcsv3 (a int, b text, c float8, _error text) SERVER kfdw_it"
                 f" OPTIONS (topic '{topic}', format 'csv', delimiter ';')")
    conn.execute("INSERT INTO kcsv3 (a, b, c) VALUES (3, 'p;q', 4)")
    rows = conn.execute("SELECT a, b, c, _error FROM kcsv3 ORDER BY a").fetchall()
    assert rows == [(1, "a,b", 2.5, None), (2, "x;y", 3.0, None), (3, "p;q", 4.0, None)]
    # The same messages read with the default delimiter are one field each: decoding errors.
    conn.execute(f"CREATE FOREIGN TABLE kcsv4 (a int, b text, _error text) SERVER kfdw_it"
                 f" OPTIONS (topic '{topic}', format 'csv')")
    assert all(r[1] is not None for r in conn.execute("SELECT a, _error FROM kcsv4").fetchall())
    with pytest.raises(psycopg.errors.FdwInvalidOptionName):
        conn.execute(f"CREATE FOREIGN TABLE kcsv5 (a int) SERVER kfdw_it OPTIONS (topic '{topic}', delimiter '#')")


def test_rescan_in_joins_prepared_statements_and_plpgsql(conn, kdb):
    conn.execute("SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off")
    n = conn.execute("SELECT count(*) FROM (VALUES (0), (1), (2)) v(p) JOIN kt ON kt._partition = v.p").fetchone()[0]
    assert n == N
    # Correlated subquery: the partition is a parameter re-evaluated at every rescan.
    rows = conn.execute("SELECT v.p, (SELECT count(*) FROM kt WHERE _partition = v.p AND _offset < v.p + 5)"
                        " FROM (VALUES (0), (1), (2)) v(p)").fetchall()
    assert rows == [(0, 5), (1, 6), (2, 7)]
    # Many rescans reuse one consumer with a new assignment each time.
    rows = conn.execute("SELECT v.p, (SELECT count(*) FROM kt WHERE _partition = v.p % 3 AND _offset >= v.p)"
                        " FROM generate_series(0, 29) v(p)").fetchall()
    assert rows == [(p, 100 - p) for p in range(30)]
    sub = "SELECT v.p, (SELECT count(*) FROM kt WHERE _partition = v.p AND _offset < v.p + 5) FROM (VALUES (0), (1), (2)) v(p)"
    plain = explain(conn, sub, analyze=False)
    assert re.search(r"Kafka Filter: .*_partition = \$param\d", plain) and re.search(r"_offset < \$param\d", plain), plain
    # After running, EXPLAIN shows the values of the last rescan and what it fetched.
    plan = explain(conn, sub)
    assert "_partition = 2" in plan and "_offset < 7" in plan and fetched(plan) == 7
    conn.execute("RESET ALL")
    # A prepared statement, run past the point where Postgres switches to a cached generic plan.
    conn.execute("PREPARE kq(int, bigint) AS SELECT count(*), min(id), max(_offset) FROM kt"
                 " WHERE _partition = $1 AND _offset >= $2")
    for k in range(10):
        p, off = k % 3, k * 7
        expect = [i for i in range(N) if i % 3 == p and i // 3 >= off]
        assert conn.execute(f"EXECUTE kq({p}, {off})").fetchone() == (len(expect), min(expect), 99)
        # The same through the extended protocol (how drivers and BI tools prepare).
        assert conn.execute("SELECT count(*), min(id), max(_offset) FROM kt WHERE _partition = %s AND _offset >= %s",
                            (p, off), prepare=True).fetchone() == (len(expect), min(expect), 99)
    conn.execute("DEALLOCATE kq")
    # plpgsql caches its plans too.
    conn.execute("""CREATE OR REPLACE FUNCTION pg_temp.kcount(p int) RETURNS bigint LANGUAGE plpgsql AS
                    $$ BEGIN RETURN (SELECT count(*) FROM kt WHERE _partition = p); END $$""")
    assert [conn.execute("SELECT pg_temp.kcount(%s)", (k % 3,)).fetchone()[0] for k in range(8)] == [100] * 8


def test_scans_commit_no_offsets_and_join_no_group(conn, kdb):
    conn.execute("SELECT count(*) FROM kt").fetchone()
    admin = AdminClient({"bootstrap.servers": BROKERS})
    groups = admin.list_consumer_groups().result(timeout=10)
    ids = [g.group_id for g in groups.valid]
    assert "pg_flink-metadata" not in ids, ids
    from confluent_kafka import ConsumerGroupTopicPartitions
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("pg_flink-metadata")])
    offsets = list(res.values())[0].result(timeout=10)
    assert all(tp.offset < 0 for tp in offsets.topic_partitions), offsets.topic_partitions


def test_import_foreign_schema_samples_topics(conn, kdb):
    t1, t2 = unique("it_kimp_a"), unique("it_kimp_b")
    create_topic(t1, 1)
    create_topic(t2, 1)
    produce(t1, [dict(value=json.dumps({"user": "u1", "n": 1, "score": 0.5, "ok": True,
                                        "at": "2024-05-01T10:00:00Z", "meta": {"a": 1}}).encode())])
    produce(t2, [dict(value=b"plain text payload")])
    conn.execute("DROP SCHEMA IF EXISTS kimp CASCADE; CREATE SCHEMA kimp")
    conn.execute(f'IMPORT FOREIGN SCHEMA topics LIMIT TO ("{t1}") FROM SERVER kfdw_it INTO kimp OPTIONS (sample_size \'10\')')
    cols = conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'kimp' ORDER BY table_name, ordinal_position").fetchall()
    assert {c[0] for c in cols} == {t1}
    assert [(c[1], c[2]) for c in cols] == [
        ("_partition", "integer"), ("_offset", "bigint"), ("_timestamp", "timestamp with time zone"),
        ("_key", "text"), ("_headers", "jsonb"), ("user", "text"), ("n", "bigint"), ("score", "double precision"),
        ("ok", "boolean"), ("at", "timestamp with time zone"), ("meta", "jsonb"), ("_error", "text")]
    assert conn.execute(f'SELECT "user", n, at = \'2024-05-01T10:00:00Z\', meta FROM kimp."{t1}"').fetchall() == [
        ("u1", 1, True, {"a": 1})]
    conn.execute(f'IMPORT FOREIGN SCHEMA topics EXCEPT ("{t1}") FROM SERVER kfdw_it INTO kimp')
    names = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'kimp'")}
    assert t1 in names and t2 in names
    assert conn.execute(f'SELECT _value FROM kimp."{t2}"').fetchall() == [("plain text payload",)]


def test_datasource_servers_and_who_may_use_them(conn, kdb):
    conn.execute("SELECT flink.register_datasource('kfdw_ds', 'kafka', %s)", (json.dumps({"bootstrap_servers": BROKERS}),))
    conn.execute("DROP SERVER IF EXISTS kfdw_ds_srv CASCADE")
    conn.execute("CREATE SERVER kfdw_ds_srv FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (datasource 'kfdw_ds')")
    conn.execute(f"CREATE FOREIGN TABLE kds (id int) SERVER kfdw_ds_srv OPTIONS (topic '{kdb}')")
    assert conn.execute("SELECT count(*) FROM kds").fetchone()[0] == N
    # A reader with USAGE on the server reads without any access to the secrets table.
    conn.execute("DROP ROLE IF EXISTS kfdw_reader; CREATE ROLE kfdw_reader LOGIN")
    conn.execute("GRANT USAGE ON FOREIGN SERVER kfdw_ds_srv TO kfdw_reader; GRANT SELECT ON kds TO kfdw_reader")
    with connect(options="-c role=kfdw_reader") as r:
        assert r.execute("SELECT count(*) FROM kds").fetchone()[0] == N
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            r.execute("SELECT * FROM flink.datasource_secret")
    # A server owned by someone outside flink_admin may not borrow a datasource's credentials.
    conn.execute("ALTER SERVER kfdw_ds_srv OWNER TO kfdw_reader")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        conn.execute("SELECT count(*) FROM kds")
    assert "not a member of flink_admin" in str(e.value)
    conn.execute("ALTER SERVER kfdw_ds_srv OWNER TO postgres")
    # Unknown datasource, wrong kind, bad options: named errors.
    conn.execute("CREATE SERVER kfdw_bad FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (datasource 'nope')")
    conn.execute(f"CREATE FOREIGN TABLE kbad_ds (id int) SERVER kfdw_bad OPTIONS (topic '{kdb}')")
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM kbad_ds")
    assert 'datasource "nope"' in str(e.value) and e.value.diag.message_hint
    with pytest.raises(psycopg.errors.FdwInvalidOptionName) as e:
        conn.execute("CREATE FOREIGN TABLE kbad_opt (id int) SERVER kfdw_it OPTIONS (topik 'x')")
    assert "topik" in str(e.value) and "topic" in e.value.diag.message_hint
    with pytest.raises(psycopg.errors.FdwInvalidOptionName):
        conn.execute("CREATE FOREIGN TABLE kbad_opt (id int) SERVER kfdw_it OPTIONS (topic 'x', on_error 'maybe')")
    with pytest.raises(psycopg.errors.FdwTableNotFound) as e:
        conn.execute("CREATE FOREIGN TABLE kmissing (id int) SERVER kfdw_it OPTIONS (topic 'no_such_topic_x')")
        conn.execute("SELECT * FROM kmissing").fetchall()
    assert 'topic "no_such_topic_x" does not exist' in str(e.value)
    conn.execute("DROP FOREIGN TABLE IF EXISTS kmissing, kbad_ds; DROP SERVER kfdw_bad")
    conn.execute("REVOKE ALL ON kds FROM kfdw_reader; REVOKE USAGE ON FOREIGN SERVER kfdw_ds_srv FROM kfdw_reader")
    conn.execute("DROP ROLE kfdw_reader")


def test_cancel_stops_a_long_scan_within_a_second(conn, kdb):
    topic = unique("it_kbig")
    create_topic(topic, 3)
    p = Producer({"bootstrap.servers": BROKERS, "linger.ms": 50, "batch.num.messages": 10000})
    body = json.dumps({"id": 1, "pad": "x" * 200}).encode()
    for i in range(600_000):
        while True:
            try:
                p.produce(topic, body, partition=i % 3)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    conn.execute(f"CREATE FOREIGN TABLE kbig (id int, pad text, _offset bigint) SERVER kfdw_it OPTIONS (topic '{topic}')")
    conn.execute("SET statement_timeout = '300ms'")
    t = time.time()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT count(*) FROM kbig WHERE pad <> id::text").fetchone()
    assert time.time() - t < 1.3
    conn.execute("RESET statement_timeout")
    # The backend is fine afterwards, and pushdown makes a small slice cheap.
    assert conn.execute("SELECT count(*) FROM kbig WHERE _offset < 10").fetchone()[0] == 30


def test_stopped_broker_is_a_clear_error_within_timeout_and_cancel_still_works(conn, kdb):
    conn.execute("DROP FOREIGN TABLE IF EXISTS kfast, kslow")
    conn.execute(f"CREATE FOREIGN TABLE kfast (id int) SERVER kfdw_it OPTIONS (topic '{kdb}', timeout_ms '2000')")
    conn.execute(f"CREATE FOREIGN TABLE kslow (id int) SERVER kfdw_it OPTIONS (topic '{kdb}', timeout_ms '60000')")
    assert stack("stop", "kafka").returncode == 0
    try:
        t = time.time()
        with pytest.raises(psycopg.errors.FdwUnableToEstablishConnection) as e:
            conn.execute("SELECT count(*) FROM kfast").fetchone()
        took = time.time() - t
        assert took < 4.5, took
        assert f"cannot reach Kafka at {BROKERS}" in str(e.value)
        # A long timeout never pins the backend: a cancel ends the wait within a second.
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        timer = threading.Timer(1.0, lambda: connect().execute("SELECT pg_cancel_backend(%s)", (pid,)))
        timer.start()
        t = time.time()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT count(*) FROM kslow").fetchone()
        assert time.time() - t < 2.2
        timer.join()
    finally:
        r = stack("start", "kafka", timeout=180)
        assert r.returncode == 0, r.stderr
    deadline = time.time() + 60
    while True:
        try:
            assert conn.execute("SELECT count(*) FROM kslow").fetchone()[0] == N
            break
        except psycopg.Error:
            if time.time() > deadline:
                raise
            time.sleep(1)


# Parameters known only when the scan runs: initplans, nested-loop/LATERAL values, generic plans,
# now(). Each query runs on the foreign table and on an ordinary table holding the same rows.


@pytest.fixture(scope="module")
def klocal(kdb):
    """kt_local: the rows of kt (metadata and id) in an ordinary table, plus helper tables."""
    with connect() as c:
        c.execute("DROP TABLE IF EXISTS kt_local, kh, kh2")
        c.execute("CREATE TABLE kt_local AS SELECT i AS id, i %% 3 AS _partition, (i / 3)::bigint AS _offset,"
                  " to_timestamp((%s + i * 1000) / 1000.0) AS _timestamp FROM generate_series(0, %s) i",
                  (BASE_MS, N - 1))
        c.execute("CREATE TABLE kh (x int); INSERT INTO kh VALUES (0), (1), (2), (5), (50), (98), (99), (100), (150)")
        c.execute("CREATE TABLE kh2 (grp int, w int); INSERT INTO kh2 VALUES (6, 1), (6, 0), (7, 40)")
    yield "kt_local"
    with connect() as c:
        c.execute("DROP TABLE IF EXISTS kt_local, kh, kh2")


def same_rows(conn, sql, params=None):
    """Rows of `sql` (with {t} for the table) on the foreign table and on kt_local, sorted."""
    got = sorted(conn.execute(sql.format(t="kt"), params).fetchall(), key=repr)
    want = sorted(conn.execute(sql.format(t="kt_local"), params).fetchall(), key=repr)
    assert got == want, sql
    return got


def test_issue_initplan_offset_and_partition(conn, klocal):
    # The reported query: 0 rows instead of 1 (the initplan's value was read before it ran).
    assert conn.execute("SELECT id, _partition, _offset FROM kt WHERE _offset = (SELECT 1) AND _partition = 0"
                        ).fetchall() == [(3, 0, 1)]
    plan = explain(conn, "SELECT id FROM kt WHERE _offset = (SELECT 1) AND _partition = 0")
    assert "_offset = 1" in plan and fetched(plan) == 1, plan


INITPLAN_OPS = ["=", "<", "<=", ">", ">=", "<>"]


@pytest.mark.parametrize("op", INITPLAN_OPS)
def test_initplan_parameters_on_offset_and_partition(conn, klocal, op):
    for value in ["(SELECT 1)", "(SELECT max(w) FROM kh2 WHERE grp = 6)", "(SELECT 98)", "(SELECT NULL::int)"]:
        rows = same_rows(conn, f"SELECT id FROM {{t}} WHERE _offset {op} {value} AND _partition = 0")
        same_rows(conn, f"SELECT id, _offset FROM {{t}} WHERE _partition {op} {value} AND _offset < 3")
        same_rows(conn, f"SELECT count(*), min(id), max(id) FROM {{t}} WHERE _offset {op} {value}")
        if value == "(SELECT 1)" and op != "<>":
            # The bounds come from the value: only the matching offsets of partition 0 are read.
            plan = explain(conn, f"SELECT id FROM kt WHERE _offset {op} {value} AND _partition = 0")
            assert fetched(plan) == len(rows), plan
    # An initplan inside a larger expression, and one per side of a range.
    same_rows(conn, "SELECT id FROM {t} WHERE _offset BETWEEN (SELECT 10) AND (SELECT 10) + 2 AND _partition = (SELECT 2)")


def test_initplan_values_passed_by_reference(conn, klocal):
    # Arrays and intervals are pointers: read before the initplan ran, they crashed the backend.
    same_rows(conn, "SELECT id FROM {t} WHERE _partition = ANY((SELECT array_agg(x) FROM kh WHERE x < 2)::int[]) AND _offset < 4")
    same_rows(conn, "SELECT id FROM {t} WHERE _offset = ANY((SELECT array_agg(x) FROM kh)::int[]) AND _partition = 1")
    with conn.transaction():  # one now() for both tables
        same_rows(conn, "SELECT id FROM {t} WHERE _timestamp < now() - (SELECT interval '1 hour') + interval '10 seconds'")
        same_rows(conn, "SELECT id FROM {t} WHERE _timestamp > now() - (SELECT max(x) FROM kh) * interval '1 minute'")
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_nested_loop_and_lateral_parameters(conn, klocal):
    # LATERAL subqueries that stay subqueries (aggregate, LIMIT): h.x is a nested-loop parameter.
    same_rows(conn, "SELECT h.x, s.* FROM kh h CROSS JOIN LATERAL"
                    " (SELECT count(*), min(id), max(id) FROM {t} WHERE _offset = h.x AND _partition = h.x % 3) s")
    same_rows(conn, "SELECT h.x, s.id FROM kh h JOIN LATERAL"
                    " (SELECT id FROM {t} WHERE _offset >= h.x AND _partition = 1 ORDER BY id LIMIT 2) s ON true")
    same_rows(conn, "SELECT h.x, s.c FROM kh h LEFT JOIN LATERAL"
                    " (SELECT count(*) c FROM {t} WHERE _offset < h.x AND _offset >= (SELECT 1)) s ON true")
    # Correlated subqueries (SubPlans; OFFSET 0 keeps EXISTS from becoming a semi-join).
    same_rows(conn, "SELECT h.x, (SELECT max(id) FROM {t} WHERE _partition = h.x % 3 AND _offset <= h.x) FROM kh h")
    same_rows(conn, "SELECT h.x FROM kh h WHERE EXISTS (SELECT 1 FROM {t} WHERE _offset = h.x AND _partition = 2 OFFSET 0)")
    same_rows(conn, "SELECT h.x, (SELECT count(*) FROM {t} WHERE _timestamp < to_timestamp(%s / 1000.0 + h.x)) FROM kh h",
              (BASE_MS,))
    # An array from the outer row (a pointer: read before the nested loop set it, it crashed).
    same_rows(conn, "SELECT v.ps, s.* FROM (VALUES (ARRAY[0, 1]), (ARRAY[2]), (ARRAY[]::int[])) v(ps) CROSS JOIN LATERAL"
                    " (SELECT count(*), max(id) FROM {t} WHERE _partition = ANY(v.ps) AND _offset < 5) s")


def test_generic_plan_parameters(conn, klocal):
    conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        for t in ("kt", "kt_local"):
            conn.execute(f"PREPARE kg_{t}(int, bigint, bigint) AS SELECT id FROM {t}"
                         f" WHERE _partition = $1 AND _offset >= $2 AND _offset < (SELECT $3 + 0)")
        for k, (p, lo, hi) in enumerate([(0, 0, 5), (1, 3, 4), (2, 90, 200), (0, 50, 50), (1, 99, 100), (2, -5, 2)]):
            got = sorted(conn.execute(f"EXECUTE kg_kt({p}, {lo}, {hi})").fetchall())
            assert got == sorted(conn.execute(f"EXECUTE kg_kt_local({p}, {lo}, {hi})").fetchall()), k
            assert got == [(i,) for i in range(N) if i % 3 == p and lo <= i // 3 < hi], k
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE) EXECUTE kg_kt(1, 2, 3)"))
        assert re.search(r"Kafka Filter: .*_partition = \$param\d", plan), plan
    finally:
        conn.execute("DEALLOCATE ALL")
        conn.execute("RESET plan_cache_mode")


def test_now_and_stable_functions(conn, klocal):
    with conn.transaction():  # one now() for both tables
        for where in ["_timestamp <= now()", "_timestamp > now()", "_timestamp > now() - interval '2 hours'",
                      "_timestamp < now() - interval '1 day'", "_timestamp >= statement_timestamp() - interval '10 years'",
                      "_timestamp < now() - interval '1 hour' + interval '10 seconds'",
                      "_timestamp <= now() AND _offset < (SELECT 3)"]:
            same_rows(conn, f"SELECT id FROM {{t}} WHERE {where}")


def test_timestamps_before_1970(conn, klocal):
    # No _timestamp is before the epoch: an upper bound there reads nothing, a lower one
    # everything (no error from Kafka's offsets-for-times lookup).
    for where in ["_timestamp < '1960-01-01'", "_timestamp <= '1960-01-01'", "_timestamp = '1960-01-01'",
                  "_timestamp BETWEEN '1950-01-01' AND '1969-12-31'", "_timestamp < '1970-01-01 00:00:00+00'",
                  "_timestamp > '1960-01-01'", "_timestamp >= '1960-01-01'", "_timestamp > '-infinity'",
                  "_timestamp < 'infinity'", "_timestamp <= 'infinity'", "_timestamp = 'infinity'",
                  "_timestamp > '1960-01-01' AND _partition = 1",
                  "_timestamp < '1960-01-01' OR _offset < 2",
                  "_timestamp IN ('1960-01-01', '1961-01-01')"]:
        same_rows(conn, f"SELECT id FROM {{t}} WHERE {where}")
    assert conn.execute("SELECT count(*) FROM kt WHERE _timestamp < '1960-01-01'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM kt WHERE _timestamp > '1960-01-01'").fetchone()[0] == N
    # A producer can store a timestamp before 1970; such a message reads with _timestamp NULL.
    topic = unique("it_kpre")
    create_topic(topic, 1, config={"retention.ms": "-1"})
    produce(topic, [dict(value=b'{"id": 0}', timestamp=-315_619_200_000),  # 1960-01-01
                    dict(value=b'{"id": 1}', timestamp=BASE_MS), dict(value=b'{"id": 2}', timestamp=BASE_MS + 1000)])
    conn.execute(f"CREATE FOREIGN TABLE kpre (_offset bigint, _timestamp timestamptz, id int)"
                 f" SERVER kfdw_it OPTIONS (topic '{topic}')")
    assert conn.execute("SELECT id, _timestamp IS NULL FROM kpre ORDER BY id").fetchall() == [
        (0, True), (1, False), (2, False)]
    assert conn.execute("SELECT id FROM kpre WHERE _timestamp < '1965-01-01'").fetchall() == []
    assert conn.execute("SELECT id FROM kpre WHERE _timestamp > '1950-01-01' ORDER BY id").fetchall() == [(1,), (2,)]
    conn.execute("DROP FOREIGN TABLE kpre")
