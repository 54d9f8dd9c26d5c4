"""Differential tester for the foreign-data wrappers: the same seeded rows live in an ordinary
heap table (the oracle), an Elasticsearch index and a Kafka topic; seeded random queries run
against the heap table and against each foreign table and must return the same rows.

Used by tests/test_differential.py (a short run in the README test command) and by
scripts/differential-long.sh (a long run):

    python tests/difftest.py --seed 7 --queries 20000 [--rows 3000] [--wrapper es|kafka|both]

Every difference is printed with its seed, query number and the query itself, so a failure
is reproduced by `--seed S --only N`. Differences that are documented semantics (see
KNOWN) are asserted as such, not ignored.
"""
import argparse
import datetime as dt
import decimal
import json
import math
import random
import sys
import time

import requests
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

# ---------------------------------------------------------------------------------------------
# Data

COLS = [  # (column, Postgres type, kind used by the query generator)
    ("id", "bigint", "int"),
    ("i4", "integer", "int"),
    ("i8", "bigint", "int"),
    ("f8", "double precision", "float"),
    ("n", "numeric", "numeric"),
    ("t", "text", "text"),
    ("tx", "text", "text"),
    ("k", "text", "text"),
    ("b", "boolean", "bool"),
    ("d", "date", "date"),
    ("ts", "timestamp", "ts"),
    ("tz", "timestamptz", "tz"),
    ("tags", "text[]", "array"),
    ("j", "jsonb", "json"),
]
TYPES = {c: t for c, t, _ in COLS}
KIND = {c: k for c, _, k in COLS}

ES_MAPPING = {"properties": {
    "id": {"type": "long"}, "i4": {"type": "integer"}, "i8": {"type": "long"},
    "f8": {"type": "double"}, "n": {"type": "double"},
    "t": {"type": "keyword", "ignore_above": 24},
    "tx": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 40}}},
    "k": {"type": "keyword"},
    "b": {"type": "boolean"}, "d": {"type": "date"},
    "ts": {"type": "date", "format": "strict_date_optional_time_nanos"},
    "tz": {"type": "date", "format": "strict_date_optional_time_nanos"},
    "tags": {"type": "keyword"}, "j": {"type": "object", "enabled": False},
}}

I32 = [-2147483648, -2147483647, -1, 0, 1, 2, 7, 42, 1000, 2147483646, 2147483647]
I64 = [-9223372036854775808, -9223372036854775807, -2147483649, -1, 0, 1, 3, 2147483648,
       9007199254740993, 9223372036854775806, 9223372036854775807]
F64 = [0.0, -0.0, 0.1, -0.1, 1.5, 2.5, 1e-300, -1e-300, 1e300, -1e300, 123456.789, 3.0,
       9007199254740993.0, 5e-324, 1.7976931348623157e308]
NUMS = ["0", "0.1", "-0.1", "1.5", "2.50", "123456.789", "1e3", "-7", "99999999.99",
        "12345678901234", "0.000001"]
TEXTS = ["", "a", "A", "b", "ab", "abc", "abd", "Ab", "a b", "a%b", "a_b", "50%", "it's", 'say "hi"',
         "back\\slash", "tab\there", "new\nline", "Århus", "ærø", "ß", "日本語", "😀 grin", "zz",
         "x" * 24, "y" * 25, "a long sentence with many words", "%", "_", "a\\%"]
WORDS = ["alpha", "beta", "gamma", "Delta", "ALPHA", "beta-gamma", "x1", "the", "quick", "fox"]
TAGS = ["a", "b", "c", "B", "", "a b", "ä"]
DATES = ["2024-05-01", "2024-02-29", "2024-12-31", "1970-01-01", "1969-12-31", "2000-01-01",
         "1999-12-31", "2038-01-19", "1900-03-01", "2024-05-02"]
TIMES = ["00:00:00", "10:00:00", "10:00:00.5", "10:00:00.123", "10:00:00.123456", "23:59:59.999999",
         "12:30:00", "10:00:01", "09:59:59.999"]
ZONES = ["Z", "+00:00", "+02:00", "-05:00", "+05:30", "+14:00", "-12:00"]


def gen_rows(seed, n):
    """Rows as dicts (None = NULL; a missing key = field absent in the document/message)."""
    r = random.Random(seed)
    rows = []
    ties = [r.choice(I32) for _ in range(5)]

    def pick(pool, p_null=0.12, p_missing=0.05, gen=None):
        x = r.random()
        if x < p_missing:
            return "MISSING"
        if x < p_missing + p_null:
            return None
        if gen is not None and r.random() < 0.5:
            return gen()
        return r.choice(pool)

    for i in range(n):
        row = {"id": i}
        row["i4"] = pick(I32 + ties, gen=lambda: r.randint(-50, 50))
        row["i8"] = pick(I64, gen=lambda: r.randint(-10**12, 10**12))
        row["f8"] = pick(F64, gen=lambda: round(r.uniform(-100, 100), r.choice([0, 1, 2, 6])))
        row["n"] = pick(NUMS, gen=lambda: str(decimal.Decimal(r.randint(-99999, 99999)) / 100))
        row["t"] = pick(TEXTS, gen=lambda: r.choice(TEXTS[:8]) + r.choice(["", "a", "b", "z"]))
        row["tx"] = pick([" ".join(r.sample(WORDS, 3))], gen=lambda: " ".join(r.sample(WORDS, r.randint(1, 4))))
        row["k"] = pick(["", "a", "A", "b", "Århus", "z z", "it's", "日本"])
        row["b"] = pick([True, False])
        d = r.choice(DATES)
        row["d"] = pick([d])
        row["ts"] = pick([f"{r.choice(DATES)}T{r.choice(TIMES)}"])
        row["tz"] = pick([f"{r.choice(DATES)}T{r.choice(TIMES)}{r.choice(ZONES)}"])
        row["tags"] = pick([[], [r.choice(TAGS)], r.sample(TAGS, 2), r.sample(TAGS, 3), [r.choice(TAGS), None]])
        row["j"] = pick([{"k": r.choice(TEXTS)}, {"n": r.choice(I64)}, {"a": [1, "two", None]}, {},
                         {"nested": {"q": "it's \"quoted\"", "big": 123456789012345678901234567890}}])
        rows.append(row)
    return rows


def sql_value(col, v):
    """A row value as a Postgres literal (for the heap table)."""
    if v is None or v == "MISSING":
        return "NULL"
    ty = TYPES[col]
    if ty == "text[]":
        return "ARRAY[" + ",".join("NULL" if x is None else lit(x) for x in v) + "]::text[]" if v else "'{}'::text[]"
    if ty == "jsonb":
        return lit(json.dumps(v)) + "::jsonb"
    if ty == "double precision":
        return lit(repr(float(v))) + "::float8"
    if ty == "boolean":
        return "true" if v else "false"
    return lit(str(v)) + "::" + ty


def lit(s):
    return "'" + str(s).replace("'", "''") + "'"


def es_doc(row):
    doc = {}
    for c, _, _ in COLS:
        v = row[c]
        if v == "MISSING":
            continue
        if c == "n" and v is not None:
            v = json.loads(v) if "e" not in v else float(v)
            doc[c] = v
            continue
        doc[c] = v
    return doc


def kafka_doc(row):
    return json.dumps(es_doc(row), ensure_ascii=bool(row["id"] % 2))


# ---------------------------------------------------------------------------------------------
# Loading

class Stack:
    def __init__(self, conn, env, seed, rows, schema="difftest"):
        self.c, self.env, self.seed, self.rows = conn, env, seed, rows
        self.schema = schema  # also the prefix of the servers (runs in other schemas coexist)
        self.suffix = f"{seed}_{len(rows)}"
        self.index = f"{schema}_{self.suffix}_{int(time.time())}"
        self.topic = self.index

    def heap_columns(self):
        return ", ".join(f"{c} {t}" for c, t, _ in COLS)

    def load(self, wrappers):
        c = self.c
        c.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        c.execute(f"DROP SERVER IF EXISTS {self.schema}_es CASCADE")
        c.execute(f"DROP SERVER IF EXISTS {self.schema}_k CASCADE")
        c.execute(f"CREATE SCHEMA {self.schema}")
        c.execute(f"SET search_path = {self.schema}, public")
        values = [f"({', '.join(sql_value(col, row[col]) for col, _, _ in COLS)})" for row in self.rows]
        c.execute(f"CREATE TABLE h_es ({self.heap_columns()}, _id text)")
        for i in range(0, len(values), 500):
            c.execute(f"INSERT INTO h_es ({', '.join(x for x, _, _ in COLS)}) VALUES {', '.join(values[i:i + 500])}")
        c.execute("UPDATE h_es SET _id = id::text")
        c.execute("CREATE TABLE dim (k integer, label text, w bigint)")
        c.execute("INSERT INTO dim SELECT g, 'l' || g, g * 3 FROM generate_series(-3, 60) g")
        c.execute("INSERT INTO dim VALUES (NULL, NULL, NULL), (2147483647, 'max', 9223372036854775807)")
        if "es" in wrappers:
            self.load_es()
        if "kafka" in wrappers:
            self.load_kafka(values)
        c.execute("ANALYZE")

    def load_es(self):
        es = self.env["PG_FLINK_ES_URL"]
        r = requests.put(f"{es}/{self.index}", json={
            "settings": {"number_of_shards": 2, "number_of_replicas": 0}, "mappings": ES_MAPPING}, timeout=30)
        assert r.status_code == 200, r.text
        lines = []
        for row in self.rows:
            lines.append(json.dumps({"index": {"_index": self.index, "_id": str(row["id"])}}))
            lines.append(json.dumps(es_doc(row)))
        r = requests.post(f"{es}/_bulk?refresh=true", data="\n".join(lines) + "\n",
                          headers={"Content-Type": "application/x-ndjson"}, timeout=300)
        r.raise_for_status()
        assert not r.json()["errors"], [i for i in r.json()["items"] if i["index"].get("error")][:3]
        self.c.execute(f"CREATE SERVER {self.schema}_es FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url '{es}')")
        self.c.execute(f"CREATE FOREIGN TABLE f_es ({self.heap_columns()}, _id text) SERVER {self.schema}_es"
                       f" OPTIONS (index '{self.index}')")

    def load_kafka(self, values):
        brokers = self.env["PG_FLINK_KAFKA"]
        admin = AdminClient({"bootstrap.servers": brokers})
        for f in admin.create_topics([NewTopic(self.topic, 3, 1)]).values():
            f.result()
        deadline = time.time() + 20
        while time.time() < deadline:
            md = admin.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if md and len(md.partitions) == 3 and all(p.leader >= 0 for p in md.partitions.values()):
                break
            time.sleep(0.2)
        r = random.Random(self.seed + 1)
        # Message i: row i, or (about 2%) a malformed message in its place; partition i % 3.
        messages, heap = [], []
        offsets = [0, 0, 0]
        bad = [b"not json", b"42", b"[1,2]", b'{"i4": 3000000000}', b'{"d": "2024-02-30"}', b'{"f8": 1e400}',
               b'{"t": "a\\u0000b"}', b'{"i4": "x"}', b'{"id": 1.5}']
        for i, row in enumerate(self.rows):
            p = i % 3
            if r.random() < 0.02:
                payload, vals, err = r.choice(bad), None, True
            else:
                payload, vals, err = kafka_doc(row).encode(), values[i], False
            messages.append((p, payload))
            heap.append((p, offsets[p], vals, err))
            offsets[p] += 1
        prod = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
        for p, payload in messages:
            prod.produce(self.topic, value=payload, partition=p)
        assert prod.flush(60) == 0
        c = self.c
        c.execute(f"CREATE TABLE h_k ({self.heap_columns()}, _partition integer, _offset bigint, err boolean)")
        nulls = ", ".join("NULL" for _ in COLS)
        tuples = [f"({vals[1:-1] if vals else nulls}, {p}, {o}, {str(err).lower()})" for p, o, vals, err in heap]
        for i in range(0, len(tuples), 500):
            c.execute(f"INSERT INTO h_k VALUES {', '.join(tuples[i:i + 500])}")
        c.execute(f"CREATE SERVER {self.schema}_k FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers '{brokers}')")
        c.execute(f"CREATE FOREIGN TABLE f_k_raw ({self.heap_columns()}, _partition integer, _offset bigint,"
                  f" _error text) SERVER {self.schema}_k OPTIONS (topic '{self.topic}', on_error 'null')")
        cols = ", ".join(c for c, _, _ in COLS)
        c.execute(f"CREATE VIEW f_k AS SELECT {cols}, _partition, _offset, _error IS NOT NULL AS err FROM f_k_raw")

    def drop(self):
        es = self.env["PG_FLINK_ES_URL"]
        requests.delete(f"{es}/{self.index}", timeout=30)
        try:
            admin = AdminClient({"bootstrap.servers": self.env["PG_FLINK_KAFKA"]})
            for f in admin.delete_topics([self.topic]).values():
                f.result()
        except Exception:  # the topic may not exist (ES-only run)
            pass
        self.c.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.c.execute(f"DROP SERVER IF EXISTS {self.schema}_es CASCADE")
        self.c.execute(f"DROP SERVER IF EXISTS {self.schema}_k CASCADE")


# ---------------------------------------------------------------------------------------------
# Queries

ZONES_SESSION = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"]


class Gen:
    """Seeded query generator. `wrapper` is 'es' or 'kafka'; queries use {T} for the table."""

    def __init__(self, seed, wrapper):
        self.r = random.Random(seed)
        self.w = wrapper
        self.params = []  # (type, literal) of $n placeholders of the current query

    # --- constants
    def const(self, kind, col=None):
        r = self.r
        if kind == "int":
            choice = r.random()
            if choice < 0.5:
                v = r.choice(I32 if col == "i4" else I64 + I32)
                return f"{v}" if -2**31 <= v < 2**31 else f"{v}::bigint"
            if choice < 0.65:
                return r.choice(["3000000000", "-3000000000", "1.5::numeric", "'-0.5'::numeric",
                                 "9223372036854775807::numeric + 1", "2::smallint", "'2.0'::float8"])
            return str(r.randint(-60, 60))
        if kind == "float":
            choice = r.random()
            if choice < 0.2:
                return r.choice(["'NaN'::float8", "'Infinity'::float8", "'-Infinity'::float8", "'-0'::float8"])
            if choice < 0.35:
                return f"{r.choice(NUMS)}::numeric"
            return f"{r.choice(F64 + [r.uniform(-100, 100), round(r.uniform(-100, 100), 1)])!r}::float8"
        if kind == "numeric":
            return r.choice([f"{r.choice(NUMS)}::numeric", f"{r.choice(NUMS)}::numeric", "2.5::float8",
                             str(r.randint(-10, 10)), "'NaN'::numeric"])
        if kind == "text":
            return lit(r.choice(TEXTS + WORDS + [" ".join(r.sample(WORDS, 3))]))
        if kind == "bool":
            return r.choice(["true", "false"])
        if kind in ("date", "ts", "tz"):
            d = r.choice(DATES)
            t = r.choice(TIMES)
            return r.choice([f"'{d}'::date", f"'{d} {t}'::timestamp", f"'{d} {t}{r.choice(ZONES)}'::timestamptz",
                             f"'{d}'::timestamptz", f"'{d} {t}'::timestamptz"])
        raise ValueError(kind)

    def array_const(self, kind, col):
        r = self.r
        n = r.choice([0, 1, 2, 3, 5])
        items = [self.const(kind, col) for _ in range(n)]
        if r.random() < 0.2:
            items.append("NULL")
        elem = {"int": "bigint" if col != "i4" else "integer", "float": "float8", "numeric": "numeric",
                "text": "text", "bool": "boolean", "date": "date", "ts": "timestamp", "tz": "timestamptz"}[kind]
        return f"ARRAY[{', '.join(items)}]::{elem}[]" if items else f"'{{}}'::{elem}[]"

    # --- conditions
    def columns(self):
        extra = ["_id"] if self.w == "es" else ["_partition", "_offset", "err"]
        return [c for c, _, _ in COLS] + extra

    def kind_of(self, col):
        return {"_id": "idtext", "_partition": "part", "_offset": "offset", "err": "bool"}.get(col) or KIND[col]

    def param(self, expr, ty):
        """Sometimes turn a constant into a $n parameter (for PREPARE shapes)."""
        if self.params is not None and self.r.random() < 0.3 and "ARRAY[" not in expr and "'{}'" not in expr:
            self.params.append((ty, expr))
            return f"${len(self.params)}::{ty}"
        return expr

    def atom(self):
        r = self.r
        col = r.choice(self.columns())
        kind = self.kind_of(col)
        ops = ["=", "<>", "<", "<=", ">", ">="]
        if kind == "array":
            return r.choice([f"{col} = '{{}}'", f"{col} = ARRAY['a']", f"{col} = ARRAY['a','b']",
                             f"'{r.choice(TAGS)}' = ANY({col})", f"{col} @> ARRAY['{r.choice(TAGS)}']",
                             f"{col} IS NULL", f"{col} IS NOT NULL", f"cardinality({col}) = 0",
                             f"{col} <> '{{}}'", f"{col} > ARRAY['b']"])
        if kind == "json":
            return r.choice([f"{col} ? 'k'", f"{col}->>'k' = 'a'", f"{col} IS NULL", f"{col} = '{{}}'",
                             f"{col} @> '{{\"n\": 0}}'", f"({col}->'nested'->>'big')::numeric > 1e29"])
        if kind == "idtext":
            return r.choice([f"_id = ''", f"_id = '{r.randint(0, 50)}'", f"_id <> '{r.randint(0, 50)}'",
                             f"_id IN ('1', '2', '', 'nope')", f"_id > '5'", f"_id LIKE '1%'", "_id IS NULL",
                             f"_id = {self.param(lit(r.randint(0, 30)), 'text')}"])
        if kind in ("part", "offset"):
            v = r.randint(0, 2) if kind == "part" else r.choice([0, 1, 5, r.randint(0, 400), 10**6, -1])
            op = r.choice(ops)
            shape = r.random()
            if shape < 0.15:
                return f"{col} = ANY({self.array_const('int', 'i4')})"
            if shape < 0.25:
                return f"{col} {op} (SELECT max(k) FROM dim WHERE k < {v})"
            return f"{col} {op} {self.param(str(v), 'bigint' if kind == 'offset' else 'integer')}"
        if kind == "bool":
            return r.choice([f"{col}", f"NOT {col}", f"{col} IS TRUE", f"{col} IS NOT FALSE", f"{col} = true",
                             f"{col} IS UNKNOWN", f"{col} <> false"])
        shape = r.random()
        if shape < 0.1:
            return f"{col} IS {r.choice(['', 'NOT '])}NULL"
        if shape < 0.25:
            neg = r.random() < 0.4
            if r.random() < 0.5:
                return f"{col} {'<> ALL' if neg else '= ANY'}({self.array_const(kind, col)})"
            items = [self.const(kind, col) for _ in range(r.randint(1, 4))]
            return f"{col} {'NOT ' if neg else ''}IN ({', '.join(items)})"
        if shape < 0.32 and kind == "text":
            pat = r.choice(["a%", "A%", "ab%", "%b", "a_b", "a\\%%", "50\\%", "%", "x%", "Å%", "日%", "alpha%", "%fox%"])
            return f"{col} {r.choice(['LIKE', 'ILIKE', 'NOT LIKE'])} {self.param(lit(pat), 'text')}"
        if shape < 0.37:
            a, b = sorted([self.const(kind, col), self.const(kind, col)])
            return f"{col} BETWEEN {a} AND {b}"
        if shape < 0.42:
            return f"{col} IS {r.choice(['', 'NOT '])}DISTINCT FROM {self.const(kind, col)}"
        if shape < 0.48 and kind in ("int", "float", "numeric"):
            return f"{col} {r.choice(ops)} (SELECT {r.choice(['max(k)', 'min(w)', 'max(w)::float8', 'max(k)::numeric'])} FROM dim WHERE k < {r.randint(-5, 70)})"
        if shape < 0.5 and kind in ("tz", "ts", "date"):
            return f"{col} {r.choice(ops)} {r.choice(['now()', 'current_date', 'localtimestamp', chr(39) + '2024-05-01' + chr(39) + '::date + 1'])}"
        c = self.const(kind, col)
        ty = c.rsplit("::", 1)[1] if "::" in c and not c.endswith(")") else None
        if ty and ty.replace(" ", "").isalnum():
            c = self.param(c, ty)
        return f"{col} {r.choice(ops)} {c}"

    def cond(self, depth=0):
        r = self.r
        x = r.random()
        if depth >= 2 or x < 0.45:
            return self.atom()
        if x < 0.7:
            return "(" + " AND ".join(self.cond(depth + 1) for _ in range(r.randint(2, 3))) + ")"
        if x < 0.9:
            return "(" + " OR ".join(self.cond(depth + 1) for _ in range(r.randint(2, 3))) + ")"
        return f"NOT ({self.cond(depth + 1)})"

    def where(self):
        return "" if self.r.random() < 0.08 else f" WHERE {self.cond()}"

    def sortable(self):
        return [c for c in self.columns() if self.kind_of(c) not in ("json",)]

    # --- whole queries: (sql, ordered?)
    def query(self):
        r = self.r
        self.params = []
        shape = r.choice(["select", "select", "order", "order", "ties", "agg", "group", "distinct", "join",
                          "lateral", "exists", "prepare", "pushagg", "pushagg"])
        if shape == "prepare":
            return self.prepared()
        self.params = None
        cols = r.sample(self.columns(), r.randint(1, 4))
        sel = ", ".join(["id"] + [c for c in cols if c != "id"])
        if shape == "select":
            return f"SELECT {sel} FROM {{T}}{self.where()}", False
        if shape == "order":
            key = r.choice(self.sortable())
            d = r.choice(["", " DESC"])
            nulls = r.choice(["", " NULLS FIRST", " NULLS LAST"])
            lim = r.choice([1, 3, 10, 100])
            off = r.choice(["", "", f" OFFSET {r.randint(1, 20)}"])
            return f"SELECT {sel} FROM {{T}}{self.where()} ORDER BY {key}{d}{nulls}, {{K}} LIMIT {lim}{off}", True
        if shape == "ties":
            key = r.choice([c for c in self.sortable() if c not in ("id", "_id", "_offset")])
            d = r.choice(["", " DESC"])
            return (f"SELECT {sel} FROM {{T}}{self.where()} ORDER BY {key}{d}{r.choice(['', ' NULLS FIRST'])}"
                    f" FETCH FIRST {r.choice([1, 2, 5])} ROWS WITH TIES"), False
        if shape == "agg":
            aggs = r.sample(["count(*)", "count(i4)", "min(i8)", "max(i8)", "sum(i4)", "min(t)", "max(d)",
                             "min(tz)", "max(ts)", "count(DISTINCT t)", "sum(n)", "max(f8)", "min(f8)",
                             "bool_and(b)", "avg(i4)", "count(tags)", "count(j)"], r.randint(1, 4))
            return f"SELECT {', '.join(aggs)} FROM {{T}}{self.where()}", False
        if shape == "group":
            key = r.choice(["t", "b", "i4", "d", "date_trunc('day', tz)", "date_trunc('hour', ts)", "tags",
                            "_partition" if self.w == "kafka" else "_id"])
            having = r.choice(["", " HAVING count(*) > 1"])
            return f"SELECT {key} AS g, count(*), max(id), sum(i8) FROM {{T}}{self.where()} GROUP BY 1{having}", False
        if shape == "pushagg":  # aggregates Elasticsearch can compute (exact WHERE or none)
            aggs = r.sample(["count(*)", "count(i4)", "count(k)", "min(i4)", "max(i4)", "sum(i4)", "max(f8)",
                             "min(f8)", "count(tz)", "count(b)"], r.randint(1, 4))
            keys = r.sample(["k", "b", "i4", "i8", "date_trunc('hour', tz)", "date_trunc('day', tz)",
                             "date_trunc('month', ts)", "date_trunc('week', tz)"], r.choice([0, 1, 1, 2]))
            where = r.choice(["", "", f" WHERE {self.atom()}", f" WHERE i4 > {r.randint(-50, 50)}",
                              f" WHERE k = {lit(r.choice(['a', 'b', '']))}", " WHERE b", " WHERE k IS NULL"])
            sel = ", ".join(keys + aggs)
            group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
            if keys and r.random() < 0.4:  # HAVING stays local over the remote aggregation
                group += r.choice([" HAVING count(*) > 1", " HAVING max(i4) > 0", " HAVING sum(i4) IS NULL",
                                   " HAVING count(k) < count(*) OR min(f8) < 0"])
            return f"SELECT {sel} FROM {{T}}{where}{group}", False
        if shape == "distinct":
            c = r.choice([c for c in self.columns() if self.kind_of(c) != "json"])
            return f"SELECT DISTINCT {c} FROM {{T}}{self.where()}", False
        if shape == "join":
            key = r.choice(["i4", "id"])
            return f"SELECT x.id, dim.label FROM {{T}} x JOIN dim ON x.{key} = dim.k{self.where().replace(' WHERE ', ' WHERE (') + ')' if False else ''} WHERE dim.k < {r.randint(0, 70)}", False
        if shape == "lateral":
            col = r.choice(["i4", "id", "i8"])
            op = r.choice(["<", "=", ">=", "<>"])
            w = self.cond()
            return (f"SELECT dim.k, s.c FROM dim, LATERAL (SELECT count(*) AS c FROM {{T}} x WHERE x.{col} {op} dim.k"
                    f" AND {w}) s WHERE dim.k BETWEEN {r.randint(-3, 30)} AND {r.randint(30, 60)}"), False
        if shape == "exists":
            return (f"SELECT k FROM dim WHERE {r.choice(['', 'NOT '])}EXISTS (SELECT 1 FROM {{T}} x WHERE x.i4 = dim.k"
                    f" AND {self.cond()})"), False
        raise ValueError(shape)

    def prepared(self):
        for _ in range(20):
            self.params = []
            body = f"SELECT id FROM {{T}} WHERE {self.cond()}"
            if self.params:
                return ("PREPARE", body, list(self.params)), False
        self.params = None
        return f"SELECT id FROM {{T}}{self.where()}", False


# ---------------------------------------------------------------------------------------------
# Running and comparing

def norm(v):
    if isinstance(v, float):  # -0.0 = 0.0 (DISTINCT keeps either)
        return ("f", v + 0.0 if not math.isnan(v) else "nan")
    if isinstance(v, decimal.Decimal):
        return ("n", v.normalize() if v.is_finite() else str(v))
    if isinstance(v, (list, tuple)):
        return tuple(norm(x) for x in v)
    if isinstance(v, dict):
        return ("j", json.dumps(v, sort_keys=True))
    return v


def run(c, q, table, zone):
    key = "_partition, _offset" if table.endswith("_k") else "id"
    """Rows of query q on table (or the exception's SQLSTATE and message)."""
    c.execute(f"SET TimeZone = '{zone}'")
    try:
        if isinstance(q, tuple):
            _, body, params = q
            types = ", ".join(t for t, _ in params)
            c.execute("DEALLOCATE ALL")
            c.execute(f"PREPARE dq({types}) AS {body.replace('{T}', table)}")
            c.execute("SET plan_cache_mode = force_generic_plan")
            rows = c.execute(f"EXECUTE dq({', '.join(v for _, v in params)})").fetchall()
            c.execute("RESET plan_cache_mode")
        else:
            rows = c.execute(q.replace("{T}", table).replace("{K}", key)).fetchall()
        return [tuple(norm(v) for v in row) for row in rows]
    except Exception as e:  # psycopg.Error: compared by SQLSTATE
        c.execute("RESET plan_cache_mode")
        return ("error", getattr(e, "sqlstate", None), str(e).splitlines()[0][:300])


def show(q):
    if isinstance(q, tuple):
        return f"PREPARE dq({', '.join(t for t, _ in q[2])}) AS {q[1]}; EXECUTE dq({', '.join(v for _, v in q[2])})"
    return q


def compare(c, seed, n_queries, wrapper, only=None, log=print):
    """Runs n_queries seeded queries against the heap and foreign table; returns the differences."""
    heap, foreign = ("h_es", "f_es") if wrapper == "es" else ("h_k", "f_k")
    c.prepare_threshold = None  # the PREPARE shape deallocates all prepared statements
    g = Gen(seed, wrapper)
    diffs = []
    zr = random.Random(seed)
    for i in range(n_queries):
        q, ordered = g.query()
        zone = zr.choice(ZONES_SESSION)
        if only is not None and i != only:
            continue
        want = run(c, q, heap, zone)
        got = run(c, q, foreign, zone)
        if isinstance(want, list) and isinstance(got, list) and not ordered:
            want, got = sorted(want, key=repr), sorted(got, key=repr)
        if want != got:
            diffs.append((i, zone, show(q), want, got))
            w = want if isinstance(want, tuple) else f"{len(want)} rows {want[:3]}"
            gg = got if isinstance(got, tuple) else f"{len(got)} rows {got[:3]}"
            log(f"DIFF seed={seed} wrapper={wrapper} query={i} zone={zone}\n  {show(q).replace('{T}', foreign)}\n"
                f"  heap:    {str(w)[:400]}\n  foreign: {str(gg)[:400]}")
    return diffs


def main():
    import psycopg  # noqa: E402 (only needed when run as a script)
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from conftest import ENV, connect  # noqa: E402

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--wrapper", choices=["es", "kafka", "both"], default="both")
    ap.add_argument("--only", type=int, help="run only query number N (to reproduce a difference)")
    ap.add_argument("--keep", action="store_true", help="keep the tables, index and topic")
    ap.add_argument("--schema", default="difftest", help="schema (and server prefix) of this run's tables")
    a = ap.parse_args()
    wrappers = ["es", "kafka"] if a.wrapper == "both" else [a.wrapper]
    with connect("pg_flink_test") as c:
        st = Stack(c, ENV, a.seed, gen_rows(a.seed, a.rows), a.schema)
        st.load(wrappers)
        total = 0
        try:
            for w in wrappers:
                t0 = time.time()
                d = compare(c, a.seed, a.queries, w, a.only)
                total += len(d)
                print(f"{w}: {a.queries} queries, {len(d)} differences, {time.time() - t0:.0f} s (seed {a.seed})")
        finally:
            if not a.keep:
                st.drop()
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
