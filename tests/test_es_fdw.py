"""Elasticsearch foreign tables (pg_flink_elasticsearch) against the stack's real Elasticsearch."""
import json
import re
import socket
import threading
import time

import psycopg
import pytest
import requests

from conftest import ENV, connect, explain, unique

ES = ENV["PG_FLINK_ES_URL"]
N = 3000
BASE_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z; doc i has ts BASE_MS + i s
CITIES = ["Oslo", "Bergen", "paris", "Århus", None]

MAPPING = {"properties": {
    "city": {"type": "keyword"},
    "body": {"type": "text", "fields": {"kw": {"type": "keyword"}}},
    "note": {"type": "text"},
    "n": {"type": "long"}, "i": {"type": "integer"}, "s": {"type": "short"},
    "d": {"type": "double"}, "f": {"type": "float"},
    "ok": {"type": "boolean"}, "ts": {"type": "date"}, "day": {"type": "date"},
    "addr": {"properties": {"zip": {"type": "keyword"}, "street": {"type": "text"}}},
    "items": {"type": "nested", "properties": {"sku": {"type": "keyword"}}},
    "tags": {"type": "keyword"},
}}


def doc(i):
    d = {"n": i, "i": i % 1000, "s": i % 100, "d": i / 4, "f": i / 2, "ok": i % 2 == 0,
         "ts": BASE_MS + i * 1000 if i % 2 else f"2024-05-01T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
         "day": "2024-05-%02d" % (1 + i % 28), "body": f"hello world {i}", "note": "Quick brown fox",
         "addr": {"zip": f"{i:04d}", "street": f"street {i}"}, "items": [{"sku": f"s{i}"}, {"sku": "common"}],
         "tags": [f"t{i % 7}", "all"]}
    if CITIES[i % 5] is not None:
        d["city"] = CITIES[i % 5]
    return d


def bulk(index, docs, refresh="true"):
    lines = []
    for _id, d in docs:
        lines.append(json.dumps({"index": {"_index": index, "_id": _id}}))
        lines.append(json.dumps(d))
    r = requests.post(f"{ES}/_bulk?refresh={refresh}", data="\n".join(lines) + "\n",
                      headers={"Content-Type": "application/x-ndjson"}, timeout=120)
    r.raise_for_status()
    assert not r.json()["errors"], r.json()["items"][:3]


def make_index(name, mapping=MAPPING):
    r = requests.put(f"{ES}/{name}", json={"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                                           "mappings": mapping}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def edb(test_db):
    index = unique("it_esfdw")
    make_index(index)
    for start in range(0, N, 1000):
        bulk(index, [(str(i), doc(i)) for i in range(start, min(N, start + 1000))])
    with connect(test_db) as c:
        c.execute("DROP SERVER IF EXISTS esfdw_it CASCADE")
        c.execute(f"CREATE SERVER esfdw_it FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url '{ES}')")
        c.execute(f"""CREATE FOREIGN TABLE et (
            _id text, city text, body text, note text, n bigint, i integer, s smallint, d float8, f real,
            dn numeric OPTIONS (field 'd'), ok boolean, ts timestamptz, day date,
            zip text OPTIONS (field 'addr.zip'), addr jsonb, items jsonb, tags text[], tags_json jsonb OPTIONS (field 'tags'),
            _score float8, _index text) SERVER esfdw_it OPTIONS (index '{index}')""")
    yield index
    requests.delete(f"{ES}/{index}", timeout=30)


def dsl(plan):
    m = re.search(r"Elasticsearch Query: (\{.*\})", plan)
    assert m, plan
    return json.loads(m.group(1))


def fetched(plan):
    return int(re.search(r"Documents Fetched: (\d+)", plan).group(1))


def test_every_type_converts(conn, edb):
    row = conn.execute("SELECT _id, city, body, n, i, s, d, f, dn, ok, ts, day, zip, addr, items, tags, tags_json, _index"
                       " FROM et WHERE _id = '7'").fetchone()
    import datetime as dt
    utc = dt.timezone.utc
    assert row == ("7", "paris", "hello world 7", 7, 7, 7, 1.75, 3.5, __import__("decimal").Decimal("1.75"), False,
                   dt.datetime.fromtimestamp((BASE_MS + 7000) / 1000, utc), dt.date(2024, 5, 8), "0007",
                   {"zip": "0007", "street": "street 7"}, [{"sku": "s7"}, {"sku": "common"}], ["t0", "all"], ["t0", "all"], edb)
    # ISO strings (even ids) and epoch millis (odd ids) are both dates.
    ts = conn.execute("SELECT n, ts FROM et WHERE n IN (10, 11) ORDER BY n").fetchall()
    assert [t[1].timestamp() * 1000 for t in ts] == [BASE_MS + 10_000, BASE_MS + 11_000]
    # Missing fields are NULL.
    assert conn.execute("SELECT count(*) FROM et WHERE city IS NULL").fetchone()[0] == N // 5


def test_a_value_that_does_not_fit_names_index_id_and_field(conn, edb):
    conn.execute("DROP FOREIGN TABLE IF EXISTS et_bad, et_bad_null")
    conn.execute(f"CREATE FOREIGN TABLE et_bad (_id text, body integer) SERVER esfdw_it OPTIONS (index '{edb}')")
    # The code Postgres' own input raises for 'hello world 3'::integer.
    with pytest.raises(psycopg.errors.InvalidTextRepresentation) as e:
        conn.execute("SELECT * FROM et_bad WHERE _id = '3'").fetchall()
    assert f'index "{edb}" document _id "3" field "body": value "hello world 3" does not fit type integer' in str(e.value)
    assert "on_error" in e.value.diag.message_hint
    conn.execute(f"CREATE FOREIGN TABLE et_bad_null (_id text, body integer) SERVER esfdw_it"
                 f" OPTIONS (index '{edb}', on_error 'null')")
    assert conn.execute("SELECT _id, body FROM et_bad_null WHERE _id = '3'").fetchall() == [("3", None)]


def cities(i):
    return CITIES[i % 5]


# (WHERE, fragment expected in the DSL, python predicate on i)
OPERATORS = [
    ("city = 'Oslo'", {"term": {"city": "Oslo"}}, lambda i: cities(i) == "Oslo"),
    ("city <> 'Oslo'", {"must_not": [{"term": {"city": "Oslo"}}]}, lambda i: cities(i) not in ("Oslo", None)),
    ("n < 10", {"range": {"n": {"lt": 10}}}, lambda i: i < 10),
    ("n <= 10", {"range": {"n": {"lte": 10}}}, lambda i: i <= 10),
    ("n > 2990", {"range": {"n": {"gt": 2990}}}, lambda i: i > 2990),
    ("n >= 2990", {"range": {"n": {"gte": 2990}}}, lambda i: i >= 2990),
    ("n BETWEEN 100 AND 105", {"range": {"n": {"lte": 105}}}, lambda i: 100 <= i <= 105),
    ("s IN (3, 4)", {"terms": {"s": [3, 4]}}, lambda i: i % 100 in (3, 4)),
    ("n = ANY(ARRAY[1, 2, 2999])", {"terms": {"n": [1, 2, 2999]}}, lambda i: i in (1, 2, 2999)),
    ("city IS NULL", {"must_not": [{"exists": {"field": "city"}}]}, lambda i: cities(i) is None),
    ("city IS NOT NULL AND n < 20", {"exists": {"field": "city"}}, lambda i: cities(i) is not None and i < 20),
    ("zip LIKE '001%'", {"prefix": {"addr.zip": {"value": "001"}}}, lambda i: f"{i:04d}".startswith("001")),
    ("ok AND n < 10", {"term": {"ok": True}}, lambda i: i % 2 == 0 and i < 10),
    ("NOT ok AND n < 10", {"term": {"ok": False}}, lambda i: i % 2 == 1 and i < 10),
    ("body = 'hello world 42'", {"term": {"body.kw": "hello world 42"}}, lambda i: i == 42),
    ("note = 'Quick brown fox' AND n < 3", {"match_phrase": {"note": {"query": "Quick brown fox"}}}, lambda i: i < 3),
    (f"ts >= to_timestamp({(BASE_MS + 2995_000) / 1000})", {"range": {"ts": {"gte": "2024-05-01T10:49:54.999Z"}}},
     lambda i: i >= 2995),
    ("day = '2024-05-03' AND n < 100", {"range": {"day": {"gte": "2024-05-02T23:59:59.999Z"}}},
     lambda i: i % 28 == 2 and i < 100),
    ("_id = '5'", {"ids": {"values": ["5"]}}, lambda i: i == 5),
    ("_id IN ('5', '6')", {"ids": {"values": ["5", "6"]}}, lambda i: i in (5, 6)),
    ("n = 3 OR city = 'paris' AND n < 30", {"minimum_should_match": 1},
     lambda i: i == 3 or (cities(i) == "paris" and i < 30)),
    ("city NOT IN ('Oslo', 'Bergen') AND n < 12", {"must_not": [{"terms": {"city": ["Oslo", "Bergen"]}}]},
     lambda i: cities(i) not in ("Oslo", "Bergen", None) and i < 12),
]


def contains(haystack, needle):
    if isinstance(needle, dict) and isinstance(haystack, dict):
        if all(k in haystack and contains(haystack[k], v) for k, v in needle.items()):
            return True
    if haystack == needle:
        return True
    if isinstance(haystack, dict):
        return any(contains(v, needle) for v in haystack.values())
    if isinstance(haystack, list):
        return any(contains(v, needle) for v in haystack)
    if isinstance(needle, dict) and isinstance(haystack, dict):
        return False
    return False


@pytest.mark.parametrize("where,fragment,pred", OPERATORS, ids=[o[0][:40] for o in OPERATORS])
def test_every_operator_is_pushed_down_and_correct(conn, edb, where, fragment, pred):
    expect = sorted(i for i in range(N) if pred(i))
    got = sorted(r[0] for r in conn.execute(f"SELECT n FROM et WHERE {where}").fetchall())
    assert got == expect
    plan = explain(conn, f"SELECT n FROM et WHERE {where}")
    q = dsl(plan)
    assert contains(q["query"], fragment), json.dumps(q)
    # Remote filtering: Elasticsearch sent (about) only the matching documents.
    assert fetched(plan) <= len(expect) + N // 5, plan


def test_order_by_limit_is_answered_remotely(conn, edb):
    # Top 5 by n with a filter: right only if Elasticsearch sorted and limited.
    sql = "SELECT n FROM et WHERE city = 'Oslo' ORDER BY n DESC LIMIT 5"
    assert [r[0] for r in conn.execute(sql)] == [2995, 2990, 2985, 2980, 2975]
    plan = explain(conn, sql)
    q = dsl(plan)
    assert q["size"] == 5 and q["sort"][0] == {"n": {"order": "desc", "missing": "_first"}}
    assert fetched(plan) == 5 and "Elasticsearch Requests: 1" in plan
    # OFFSET is fetched too (LIMIT + OFFSET rows), still from the sorted remote result.
    assert [r[0] for r in conn.execute("SELECT n FROM et ORDER BY n LIMIT 3 OFFSET 4")] == [4, 5, 6]
    # A filter Postgres must apply itself keeps LIMIT local: results stay right.
    sql = "SELECT n FROM et WHERE n % 7 = 0 ORDER BY n LIMIT 3"
    assert [r[0] for r in conn.execute(sql)] == [0, 7, 14]
    plan = explain(conn, sql)
    assert "size\":1000" in plan and fetched(plan) > 3
    # Joins never get a LIMIT pushed into one side.
    rows = conn.execute("SELECT a.n FROM et a JOIN (VALUES (2999), (2998)) v(x) ON a.n = v.x ORDER BY a.n LIMIT 1").fetchall()
    assert rows == [(2998,)]


def test_base_query_aliases_and_patterns(conn, edb):
    conn.execute("DROP FOREIGN TABLE IF EXISTS et_oslo, et_alias, et_pattern")
    conn.execute(f"""CREATE FOREIGN TABLE et_oslo (_id text, city text, n bigint) SERVER esfdw_it
                     OPTIONS (index '{edb}', query '{{"term": {{"city": "Oslo"}}}}')""")
    assert conn.execute("SELECT count(*), count(*) FILTER (WHERE city = 'Oslo') FROM et_oslo").fetchone() == (N // 5, N // 5)
    # The base query is ANDed with the WHERE clause.
    assert conn.execute("SELECT count(*) FROM et_oslo WHERE n < 100").fetchone()[0] == 20
    q = dsl(explain(conn, "SELECT n FROM et_oslo WHERE n < 100"))
    # The table's query scores (must); pushed conditions only filter.
    assert q["query"] == {"bool": {"must": [{"term": {"city": "Oslo"}}], "filter": [{"range": {"n": {"lt": 100}}}]}}
    # An alias and a pattern read the same documents.
    alias = unique("it_esalias")
    requests.post(f"{ES}/_aliases", json={"actions": [{"add": {"index": edb, "alias": alias}}]}, timeout=30).raise_for_status()
    conn.execute(f"CREATE FOREIGN TABLE et_alias (_id text, _index text) SERVER esfdw_it OPTIONS (index '{alias}')")
    conn.execute(f"CREATE FOREIGN TABLE et_pattern (_id text) SERVER esfdw_it OPTIONS (index '{edb[:-4]}*')")
    assert conn.execute("SELECT count(*), min(_index) FROM et_alias").fetchone() == (N, edb)
    assert conn.execute("SELECT count(*) FROM et_pattern").fetchone()[0] == N


def test_user_mapping_credentials_are_sent_and_never_shown(conn, edb):
    secret = "sekrit-" + unique("pw")
    conn.execute("DROP SERVER IF EXISTS es_auth CASCADE")
    conn.execute(f"CREATE SERVER es_auth FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url '{ES}')")
    conn.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER es_auth OPTIONS (username 'reader', password '{secret}')")
    conn.execute(f"CREATE FOREIGN TABLE e_auth (_id text) SERVER es_auth OPTIONS (index '{edb}')")
    # This Elasticsearch has no security: basic auth is accepted and ignored.
    assert conn.execute("SELECT count(*) FROM e_auth").fetchone()[0] == N
    conn.execute("ALTER SERVER es_auth OPTIONS (SET url 'http://127.0.0.1:1')")
    with pytest.raises(psycopg.errors.FdwUnableToEstablishConnection) as e:
        conn.execute("SELECT count(*) FROM e_auth").fetchone()
    assert secret not in str(e.value) and secret not in (e.value.diag.message_hint or "")
    conn.execute("DROP SERVER es_auth CASCADE")


def test_paging_streams_every_document(conn, edb):
    conn.execute("DROP FOREIGN TABLE IF EXISTS et_small_pages")
    conn.execute(f"CREATE FOREIGN TABLE et_small_pages (_id text, n bigint) SERVER esfdw_it"
                 f" OPTIONS (index '{edb}', batch_size '400')")
    assert conn.execute("SELECT count(*), count(DISTINCT _id), sum(n) FROM et_small_pages").fetchone() == (N, N, N * (N - 1) // 2)
    plan = explain(conn, "SELECT n FROM et_small_pages")
    # One page without a point in time (dropped: the result does not fit in it), then 7 full
    # pages + 1 short through the point in time.
    assert "Elasticsearch Requests: 9" in plan and fetched(plan) == N


def test_rescan_in_nested_loop_prepared_statements_and_plpgsql(conn, edb):
    conn.execute("SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off")
    rows = conn.execute("SELECT v.c, count(e.n) FROM (VALUES ('Oslo'), ('paris')) v(c) JOIN et e ON e.city = v.c"
                        " GROUP BY v.c ORDER BY 1").fetchall()
    assert rows == [("Oslo", N // 5), ("paris", N // 5)]
    rows = conn.execute("SELECT v.x, (SELECT max(n) FROM et WHERE n < v.x) FROM (VALUES (10), (500), (2000)) v(x)").fetchall()
    assert rows == [(10, 9), (500, 499), (2000, 1999)]
    conn.execute("RESET ALL")
    conn.execute("PREPARE eq(bigint, text) AS SELECT count(*) FROM et WHERE n >= $1 AND city = $2")
    for k in range(9):
        lo, city = k * 300, CITIES[k % 4]
        expect = sum(1 for i in range(N) if i >= lo and cities(i) == city)
        assert conn.execute(f"EXECUTE eq({lo}, '{city}')").fetchone()[0] == expect
        assert conn.execute("SELECT count(*) FROM et WHERE n >= %s AND city = %s", (lo, city),
                            prepare=True).fetchone()[0] == expect
    conn.execute("DEALLOCATE eq")
    conn.execute("""CREATE OR REPLACE FUNCTION pg_temp.ecount(lo bigint) RETURNS bigint LANGUAGE plpgsql AS
                    $$ BEGIN RETURN (SELECT count(*) FROM et WHERE n >= lo); END $$""")
    assert [conn.execute("SELECT pg_temp.ecount(%s)", (k * 100,)).fetchone()[0] for k in range(8)] == [N - k * 100 for k in range(8)]


def test_explain_verbose_shows_the_exact_dsl_without_running(conn, edb):
    plan = explain(conn, "SELECT _id FROM et WHERE city = 'Oslo' AND n > 5 ORDER BY n LIMIT 2", analyze=False)
    q = dsl(plan)
    assert q["size"] == 2 and sorted(q["_source"]) == ["city", "n"], q
    assert "Documents Fetched" not in plan
    # Parameters show as placeholders until run.
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute("PREPARE ep(bigint) AS SELECT n FROM et WHERE n < $1")
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE) EXECUTE ep(5)"))
    assert '"lt":"$param1"' in plan.replace(" ", ""), plan
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, VERBOSE) EXECUTE ep(5)"))
    assert '"lt":5' in plan.replace(" ", "") and fetched(plan) == 5, plan
    conn.execute("DEALLOCATE ep; RESET plan_cache_mode")


def test_writes_by_id_through_the_bulk_api(conn, edb):
    index = unique("it_eswrite")
    make_index(index, {"properties": {"name": {"type": "keyword"}, "qty": {"type": "long"},
                                      "at": {"type": "date"}, "meta": {"type": "object"}}})
    conn.execute(f"CREATE FOREIGN TABLE ew (_id text, name text, qty bigint, at timestamptz, meta jsonb,"
                 f" zip text OPTIONS (field 'meta.zip')) SERVER esfdw_it OPTIONS (index '{index}', batch_size '100')")
    n = conn.execute("INSERT INTO ew (_id, name, qty, at, zip) SELECT g::text, 'n' || g, g,"
                     " '2024-01-01'::timestamptz + g * interval '1 minute', lpad(g::text, 4, '0')"
                     " FROM generate_series(1, 250) g").rowcount
    assert n == 250
    assert conn.execute("SELECT count(*), sum(qty) FROM ew").fetchone() == (250, 250 * 251 // 2)
    src = requests.get(f"{ES}/{index}/_doc/7", timeout=10).json()["_source"]
    assert src == {"name": "n7", "qty": 7, "at": "2024-01-01T00:07:00Z", "meta": {"zip": "0007"}}
    # Without _id, Elasticsearch assigns one.
    conn.execute("INSERT INTO ew (name, qty) VALUES ('auto', 0)")
    assert len(conn.execute("SELECT _id FROM ew WHERE name = 'auto'").fetchone()[0]) > 10
    assert conn.execute("UPDATE ew SET qty = qty * 10 WHERE qty BETWEEN 1 AND 5").rowcount == 5
    assert conn.execute("SELECT sum(qty) FROM ew WHERE _id IN ('1','2','3','4','5')").fetchone()[0] == 150
    # Fields the UPDATE does not set are kept (Postgres hands over the whole old row).
    assert requests.get(f"{ES}/{index}/_doc/2", timeout=10).json()["_source"] == {
        "name": "n2", "qty": 20, "at": "2024-01-01T00:02:00Z", "meta": {"zip": "0002"}}
    assert conn.execute("DELETE FROM ew WHERE qty > 200").rowcount == 50
    assert conn.execute("SELECT count(*) FROM ew").fetchone()[0] == 201
    # Per-document errors are reported (at COMMIT: writes are buffered for the transaction, see
    # test_fdw_transactions.py); the good documents of the same bulk request are written.
    with pytest.raises(psycopg.errors.DataException) as e:
        conn.execute("INSERT INTO ew (_id, name, meta) VALUES ('ok1', 'fine', NULL), ('bad1', 'x', '\"not an object\"')")
    assert 'rejected 1 of the 2 buffered action(s)' in str(e.value) and '_id "bad1": mapper_parsing_exception' in str(e.value)
    assert conn.execute("SELECT count(*) FROM ew WHERE _id = 'ok1'").fetchone()[0] == 1
    # UPDATE/DELETE need _id.
    conn.execute(f"CREATE FOREIGN TABLE ew_noid (name text) SERVER esfdw_it OPTIONS (index '{index}')")
    with pytest.raises(psycopg.errors.FdwColumnNameNotFound):
        conn.execute("DELETE FROM ew_noid")
    requests.delete(f"{ES}/{index}", timeout=30)


def test_import_foreign_schema_from_mappings(conn, edb):
    other = unique("it_esimp")
    make_index(other, {"properties": {"a": {"type": "keyword"}, "b": {"type": "half_float"}}})
    conn.execute("DROP SCHEMA IF EXISTS esimp CASCADE; CREATE SCHEMA esimp")
    conn.execute(f'IMPORT FOREIGN SCHEMA "it_es*" LIMIT TO ("{edb}") FROM SERVER esfdw_it INTO esimp')
    cols = conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'esimp' ORDER BY ordinal_position").fetchall()
    assert {c[0] for c in cols} == {edb}
    assert [(c[1], c[2]) for c in cols] == [
        ("_id", "text"), ("addr", "jsonb"), ("body", "text"), ("city", "text"), ("d", "double precision"),
        ("day", "timestamp with time zone"), ("f", "real"), ("i", "integer"), ("items", "jsonb"), ("n", "bigint"),
        ("note", "text"), ("ok", "boolean"), ("s", "smallint"), ("tags", "text"), ("ts", "timestamp with time zone"),
        ("_score", "double precision"), ("_index", "text")]
    # Imported keyword columns carry es_type, so equality + ORDER BY + LIMIT go remote exactly.
    plan = explain(conn, f'SELECT n FROM esimp."{edb}" WHERE city = \'Oslo\' ORDER BY n DESC LIMIT 2')
    assert fetched(plan) == 2
    conn.execute(f'IMPORT FOREIGN SCHEMA "it_es*" EXCEPT ("{edb}") FROM SERVER esfdw_it INTO esimp')
    names = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'esimp'")}
    assert edb in names and other in names
    requests.delete(f"{ES}/{other}", timeout=30)


def test_errors_name_the_index_and_never_hang(conn, edb):
    conn.execute("DROP FOREIGN TABLE IF EXISTS e_missing")
    conn.execute("CREATE FOREIGN TABLE e_missing (_id text) SERVER esfdw_it OPTIONS (index 'no_such_index_x')")
    with pytest.raises(psycopg.errors.FdwTableNotFound) as e:
        conn.execute("SELECT * FROM e_missing").fetchall()
    assert 'index "no_such_index_x" does not exist' in str(e.value)
    # Nothing listening.
    conn.execute("DROP SERVER IF EXISTS es_down CASCADE")
    conn.execute("CREATE SERVER es_down FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url 'http://127.0.0.1:1')")
    conn.execute("CREATE FOREIGN TABLE e_down (_id text) SERVER es_down OPTIONS (index 'x')")
    with pytest.raises(psycopg.errors.FdwUnableToEstablishConnection) as e:
        conn.execute("SELECT * FROM e_down").fetchall()
    assert "cannot reach Elasticsearch at http://127.0.0.1:1/" in str(e.value)
    # A server that accepts and never answers: timeout_ms bounds the wait.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    conn.execute("DROP SERVER IF EXISTS es_silent CASCADE")
    conn.execute(f"CREATE SERVER es_silent FOREIGN DATA WRAPPER pg_flink_elasticsearch"
                 f" OPTIONS (url 'http://127.0.0.1:{port}', timeout_ms '1000')")
    conn.execute("CREATE FOREIGN TABLE e_silent (_id text) SERVER es_silent OPTIONS (index 'x')")
    t = time.time()
    with pytest.raises(psycopg.errors.ConnectionFailure) as e:
        conn.execute("SELECT * FROM e_silent").fetchall()
    assert time.time() - t < 3.5 and "did not answer within 1000 ms" in str(e.value)
    srv.close()
    conn.execute("DROP SERVER es_down CASCADE; DROP SERVER es_silent CASCADE")


@pytest.fixture(scope="module")
def big(test_db):
    """100k documents, for the BI client test and cancel."""
    index = unique("it_esbig")
    make_index(index, {"properties": {"k": {"type": "keyword"}, "v": {"type": "long"}, "t": {"type": "text"}}})
    docs = [(str(i), {"k": f"k{i % 10}", "v": i, "t": "lorem ipsum dolor sit amet " * 4}) for i in range(100_000)]
    for s in range(0, len(docs), 10_000):
        bulk(index, docs[s:s + 10_000], refresh="false")
    requests.post(f"{ES}/{index}/_refresh", timeout=60)
    with connect(test_db) as c:
        c.execute(f"CREATE FOREIGN TABLE IF NOT EXISTS es_big (_id text, k text, v bigint, t text)"
                  f" SERVER esfdw_it OPTIONS (index '{index}')")
        c.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    yield index
    with connect(test_db) as c:
        c.execute("DROP FOREIGN TABLE IF EXISTS es_big")
    requests.delete(f"{ES}/{index}", timeout=30)


def open_contexts():
    stats = requests.get(f"{ES}/_nodes/stats/indices/search", timeout=10).json()
    return sum(n["indices"]["search"]["open_contexts"] for n in stats["nodes"].values())


def test_bi_client_introspects_binds_and_streams_100k_rows(edb, big):
    with connect() as c:
        cols = c.execute("SELECT column_name, data_type FROM information_schema.columns"
                         " WHERE table_name = 'es_big' ORDER BY ordinal_position").fetchall()
        assert cols == [("_id", "text"), ("k", "text"), ("v", "bigint"), ("t", "text")]
        assert c.execute("SELECT count(*) FROM es_big WHERE k = %s AND v >= %s", ("k3", 50_000)).fetchone()[0] == 5000
    # Server-side cursor, fetched in chunks, as BI tools do.
    with connect(autocommit=False) as c:
        with c.cursor(name="bi") as cur:
            cur.itersize = 5000
            cur.execute("SELECT _id, k, v FROM es_big WHERE v >= %s", (0,))
            n = total = 0
            for _id, k, v in cur:
                n += 1
                total += v
            assert n == 100_000 and total == 100_000 * 99_999 // 2
        c.rollback()


def test_cancel_stops_a_long_scan_and_closes_its_point_in_time(conn, big):
    before = open_contexts()
    conn.execute("DROP FOREIGN TABLE IF EXISTS es_big_slow")
    conn.execute(f"CREATE FOREIGN TABLE es_big_slow (_id text, v bigint, t text) SERVER esfdw_it"
                 f" OPTIONS (index '{big}', batch_size '200')")
    conn.execute("SET statement_timeout = '400ms'")
    t = time.time()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT count(*) FROM es_big_slow WHERE t <> v::text").fetchone()
    assert time.time() - t < 1.4
    conn.execute("RESET statement_timeout")
    deadline = time.time() + 5
    while open_contexts() > before and time.time() < deadline:
        time.sleep(0.2)
    assert open_contexts() <= before
    # Ctrl-C from another session (pg_cancel_backend) too.
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    timer = threading.Timer(0.5, lambda: connect().execute("SELECT pg_cancel_backend(%s)", (pid,)))
    timer.start()
    t = time.time()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT count(*) FROM es_big_slow WHERE t <> v::text").fetchone()
    assert time.time() - t < 1.6
    timer.join()


# Parameters known only when the scan runs: initplans, nested-loop/LATERAL values, generic plans,
# now(). Each query runs on the foreign table and on an ordinary table holding the same rows.


@pytest.fixture(scope="module")
def elocal(edb):
    """et_local: n, s, city, zip, ts and _id of every document of et in an ordinary table,
    plus helper tables."""
    with connect() as c:
        c.execute("DROP TABLE IF EXISTS et_local, es_labels, es_h, es_h2")
        c.execute("CREATE TABLE et_local AS SELECT i::text AS _id, i::bigint AS n, (i %% 100)::smallint AS s,"
                  " (ARRAY['Oslo', 'Bergen', 'paris', 'Århus', NULL])[i %% 5 + 1] AS city,"
                  " lpad(i::text, 4, '0') AS zip, to_timestamp((%s + i * 1000) / 1000.0) AS ts"
                  " FROM generate_series(0, %s) i", (BASE_MS, N - 1))
        c.execute("CREATE TABLE es_labels (id int, label text);"
                  " INSERT INTO es_labels VALUES (1, 'Os'), (2, 'pa'), (3, '001'), (4, 'Bergen')")
        c.execute("CREATE TABLE es_h (x int, p text); INSERT INTO es_h VALUES"
                  " (0, 'Oslo'), (3, 'paris'), (42, 'nope'), (99, NULL), (150, 'Bergen')")
        c.execute("CREATE TABLE es_h2 (grp int, w int); INSERT INTO es_h2 VALUES (6, 3), (6, 5), (1, 9)")
    yield "et_local"
    with connect() as c:
        c.execute("DROP TABLE IF EXISTS et_local, es_labels, es_h, es_h2")


def same_rows(conn, sql, params=None):
    """Rows of `sql` (with {t} for the table) on the foreign table and on et_local, sorted."""
    got = sorted(conn.execute(sql.format(t="et"), params).fetchall(), key=repr)
    want = sorted(conn.execute(sql.format(t="et_local"), params).fetchall(), key=repr)
    assert got == want, sql
    return got


def test_issue_initplan_in_like_pattern_keeps_the_backend_alive(conn, elocal):
    # The reported crash: the pattern's initplan value was read (a NULL pointer) before it ran.
    sql = "SELECT count(*) FROM {t} WHERE city LIKE (SELECT label FROM es_labels ORDER BY id LIMIT 1) || '%'"
    assert same_rows(conn, sql) == [(N // 5,)]
    assert conn.execute("SELECT pg_backend_pid() > 0").fetchone() == (True,)
    same_rows(conn, "SELECT n FROM {t} WHERE zip LIKE (SELECT label FROM es_labels WHERE id = 3) || '%'")
    same_rows(conn, "SELECT n FROM {t} WHERE zip LIKE (SELECT label FROM es_labels WHERE id = 99) || '%'")
    # Run, the value is in the query sent; plain EXPLAIN evaluates nothing (a placeholder).
    plan = explain(conn, sql.format(t="et"))
    assert contains(dsl(plan)["query"], {"prefix": {"city": {"value": "Os"}}}), plan
    assert fetched(plan) == N // 5
    plan = explain(conn, sql.format(t="et"), analyze=False)
    assert "$param1" in plan and "Documents Fetched" not in plan, plan


@pytest.mark.parametrize("op", ["=", "<", "<=", ">", ">=", "<>"])
def test_initplan_parameters_in_comparisons(conn, elocal, op):
    # Reported: `grp < (SELECT max(w) FROM h2 WHERE grp = 6)` returned 0 rows.
    for value in ["(SELECT max(w) FROM es_h2 WHERE grp = 6)", "(SELECT 2)", "(SELECT NULL::int)"]:
        same_rows(conn, f"SELECT n FROM {{t}} WHERE s {op} {value}")
        same_rows(conn, f"SELECT count(*), min(n), max(n) FROM {{t}} WHERE n {op} {value} * 600")
    same_rows(conn, f"SELECT n FROM {{t}} WHERE n {op} (SELECT 2990) ORDER BY n LIMIT 3")


def test_initplan_values_passed_by_reference(conn, elocal):
    # Text, arrays and intervals are pointers: read before the initplan ran, they crashed.
    for where in ["city = (SELECT 'Oslo')", "city = (SELECT label FROM es_labels WHERE id = 4)",
                  "city <> (SELECT 'Oslo') AND n < 50", "_id = (SELECT '5')",
                  "city = ANY((SELECT array_agg(label) FROM es_labels)::text[]) AND n < 100",
                  "n = ANY((SELECT array_agg(x) FROM es_h)::int[])",
                  "zip = (SELECT lpad('7', 4, '0'))"]:
        same_rows(conn, f"SELECT n FROM {{t}} WHERE {where}")
    with conn.transaction():  # one now() for both tables
        same_rows(conn, "SELECT n FROM {t} WHERE ts < now() - (SELECT interval '1 day')")
        same_rows(conn, "SELECT n FROM {t} WHERE ts >= (SELECT to_timestamp(%s / 1000.0)) AND n < 2950",
                  (BASE_MS + 2_940_000,))
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_nested_loop_and_lateral_parameters(conn, elocal):
    # LATERAL subqueries that stay subqueries (aggregate, LIMIT): h.x and h.p are nested-loop
    # parameters; correlated subqueries are SubPlans with parameters (OFFSET 0 keeps EXISTS
    # from becoming a semi-join). Text values are pointers: read too early, they crashed.
    same_rows(conn, "SELECT h.x, s.* FROM es_h h CROSS JOIN LATERAL"
                    " (SELECT count(*), min(n) FROM {t} WHERE s = h.x AND n < h.x * 30) s")
    same_rows(conn, "SELECT h.p, s.* FROM es_h h CROSS JOIN LATERAL"
                    " (SELECT count(*), max(n) FROM {t} WHERE city = h.p AND n < 1000) s")
    same_rows(conn, "SELECT h.x, s.n FROM es_h h JOIN LATERAL"
                    " (SELECT n FROM {t} WHERE city = h.p ORDER BY n DESC LIMIT 2) s ON true")
    same_rows(conn, "SELECT h.x, (SELECT max(n) FROM {t} WHERE zip LIKE lpad(h.x::text, 3, '0') || '%') FROM es_h h")
    same_rows(conn, "SELECT h.p FROM es_h h WHERE EXISTS (SELECT 1 FROM {t} WHERE city = h.p AND n > 2990 OFFSET 0)")
    same_rows(conn, "SELECT h.x, (SELECT count(*) FROM {t} WHERE ts < to_timestamp(%s / 1000.0 + h.x)) FROM es_h h",
              (BASE_MS,))


def test_generic_plan_parameters(conn, elocal):
    conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        for t in ("et", "et_local"):
            conn.execute(f"PREPARE eg_{t}(text, bigint) AS SELECT n FROM {t}"
                         f" WHERE city = $1 AND n >= $2 AND n < (SELECT $2 + 200)")
        for k, (city, lo) in enumerate([("Oslo", 0), ("paris", 100), ("Bergen", 2900), ("Oslo", 2990),
                                        ("nope", 0), ("Århus", 1234)]):
            got = sorted(conn.execute(f"EXECUTE eg_et('{city}', {lo})").fetchall())
            assert got == sorted(conn.execute(f"EXECUTE eg_et_local('{city}', {lo})").fetchall()), k
            assert got == [(i,) for i in range(N) if cities(i) == city and lo <= i < lo + 200], k
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE) EXECUTE eg_et('Oslo', 5)"))
        assert "$param" in plan, plan
    finally:
        conn.execute("DEALLOCATE ALL")
        conn.execute("RESET plan_cache_mode")


def test_now_and_stable_functions(conn, elocal):
    with conn.transaction():  # one now() for both tables
        for where in ["ts < now()", "ts > now()", "ts >= now() - interval '100 years'",
                      "ts < now() - interval '100 years'", "ts >= statement_timestamp() - interval '100 years'",
                      "ts < now() AND n < (SELECT 7)"]:
            same_rows(conn, f"SELECT n FROM {{t}} WHERE {where}")
