#!/usr/bin/env python3
"""Foreign-table benchmarks (Kafka and Elasticsearch) against the local stack.

Builds and installs the extension optimised (PG_FLINK_PROFILE=release scripts/stack.sh up),
builds the baseline clients (benchmarks/baseline: a plain rdkafka consumer and a plain Rust
point-in-time + search_after reader, same crate versions as the extension), loads the data
once (kept between runs), then measures in the same run:

Kafka (1M JSON messages, 3 partitions):
  - baseline consumer, read only and read + JSON parse (messages/s)
  - FDW `SELECT count(*)` and a full-row scan (every column converted) (messages/s)
  - an offset-range query for 1k of the 1M messages: time and messages fetched
  - peak backend RSS (VmHWM) during the full-row scan
Elasticsearch (1M and 100k documents):
  - baseline PIT + search_after full scan vs FDW full-row scan (rows/s), same page size
  - a selective pushed-down query on the 100k and the 1M index (time; target within 2x)
  - peak backend RSS during the 1M scan

Every comparison runs side by side: each round runs every contestant once, interleaved, for
--rounds rounds (default 5); min/median/max seconds are recorded and each ratio is the
reference's median time over the FDW's (> 1: the FDW is faster).

Usage: benchmarks/fdw.py [--kafka] [--es] [--rounds 5]   (both when neither is given)
Writes benchmarks/results/fdw.json and prints a summary.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import time

import psycopg
import requests

REPO = pathlib.Path(__file__).resolve().parent.parent
STACK = REPO / "scripts" / "stack.sh"
ENV = dict(l.split("=", 1) for l in subprocess.run([str(STACK), "env"], capture_output=True, text=True, check=True).stdout.splitlines() if "=" in l)
BROKERS, ES = ENV["PG_FLINK_KAFKA"], ENV["PG_FLINK_ES_URL"]
DB = "pg_flink_bench"
TARGET = os.environ.get("CARGO_TARGET_DIR", f"{ENV['PG_FLINK_STACK']}/target")
BASELINE = f"{TARGET}/release/pg_flink_baseline"


def log(*a):
    print("[bench]", *a, flush=True)


def conn(db=DB):
    return psycopg.connect(f"host={ENV['PGHOST']} port={ENV['PGPORT']} user={ENV['PGUSER']} dbname={db}", autocommit=True)


def setup():
    log("stack up with an optimised (release) build of the extension")
    subprocess.run([str(STACK), "up"], check=True, env={**os.environ, "PG_FLINK_PROFILE": "release"}, stdout=subprocess.DEVNULL)
    log("building the baseline clients")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", str(REPO / "benchmarks/baseline/Cargo.toml")],
                   check=True, env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    with conn("postgres") as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    with conn() as c:
        c.execute("CREATE EXTENSION pg_flink")


def baseline(*args):
    out = subprocess.run([BASELINE, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(c, sql):
    t = time.perf_counter()
    c.execute(sql).fetchall()
    return time.perf_counter() - t


def peak_rss_kb(sql):
    """Peak resident memory (VmHWM) of a fresh backend that ran `sql`."""
    with conn() as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        c.execute(sql).fetchall()
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def best(runs, fn):
    return min(fn() for _ in range(runs))


def side_by_side(rounds, contestants):
    """Runs every contestant once per round, interleaved (so drift hits all alike), and
    returns {name: {"min", "median", "max", "rounds"}} of the seconds each took."""
    times = {name: [] for name in contestants}
    for _ in range(rounds):
        for name, fn in contestants.items():
            times[name].append(fn())
    return {n: {"min": min(t), "median": statistics.median(t), "max": max(t), "rounds": len(t)}
            for n, t in times.items()}


def ratio(r, fdw, ref):
    """FDW speed relative to the reference (reference median time / FDW median time)."""
    return r[ref]["median"] / r[fdw]["median"]


def baseline_seconds(*args):
    return baseline(*args)["seconds"]


# ------------------------------------------------------------------------------ Kafka

def kafka_bench(rounds, n=1_000_000):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "bench_kafka_1m"
    admin = AdminClient({"bootstrap.servers": BROKERS})
    have = 0
    if topic in admin.list_topics(timeout=10).topics:
        from confluent_kafka import Consumer, TopicPartition
        cons = Consumer({"bootstrap.servers": BROKERS, "group.id": "bench-probe"})
        for p in range(3):
            lo, hi = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            have += hi - lo
        cons.close()
    if have != n:
        log(f"loading {n} messages into {topic}")
        if topic in admin.list_topics(timeout=10).topics:
            for f in admin.delete_topics([topic]).values():
                f.result()
            time.sleep(2)
        for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
            f.result()
        p = Producer({"bootstrap.servers": BROKERS, "linger.ms": 50, "batch.num.messages": 10000, "compression.type": "none"})
        for i in range(n):
            v = json.dumps({"id": i, "user_name": f"user{i % 5000}", "amount": round(i * 0.37 % 1000, 2),
                            "country": ["NO", "SE", "DK", "FI"][i % 4], "ts": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z"}).encode()
            while True:
                try:
                    p.produce(topic, v, key=str(i).encode(), partition=i % 3)
                    break
                except BufferError:
                    p.poll(0.05)
        assert p.flush(120) == 0
    with conn() as c:
        c.execute(f"CREATE SERVER kb FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (brokers '{BROKERS}')")
        c.execute(f"""CREATE FOREIGN TABLE k1m (_partition int, _offset bigint, _timestamp timestamptz, _key text,
                      id bigint, user_name text, amount numeric, country text, ts timestamptz, _error text)
                      SERVER kb OPTIONS (topic '{topic}')""")
    full = ("SELECT count(_partition), count(_offset), count(_timestamp), count(_key), count(id), count(user_name),"
            " count(amount), count(country), count(ts), count(_error) FROM k1m")
    r = {"messages": n}
    from confluent_kafka import Consumer, TopicPartition
    raw = Consumer({"bootstrap.servers": BROKERS, "group.id": "bench-range", "enable.auto.commit": False,
                    "fetch.wait.max.ms": 5})

    def raw_range():
        """The strongest plain client for a range: a live librdkafka consumer (C), assigned."""
        t = time.perf_counter()
        raw.assign([TopicPartition(topic, 1, 100000)])
        got = 0
        while got < 1000:
            for m in raw.consume(1000 - got, timeout=5):
                if m.error() is None:
                    json.loads(m.value())  # the rows are decoded on both sides
                    got += 1
        return time.perf_counter() - t

    with conn() as c:
        assert c.execute("SELECT count(*) FROM k1m").fetchone()[0] == n
        where = "_partition = 1 AND _offset >= 100000 AND _offset < 101000"
        rng = f"SELECT * FROM k1m WHERE {where}"
        # Every column decoded, no rows sent to the client (as the full-row scan above, and as
        # the reference, which decodes and sends nothing anywhere).
        rng_decoded = full + f" WHERE {where}"
        timed(c, rng)  # the backend's consumer pool is warm, as the raw consumer is
        log("kafka: count(*) and full rows, FDW and plain Rust consumer, side by side")
        c.execute("SET max_parallel_workers_per_gather = 0")
        r["serial"] = side_by_side(rounds, {
            "baseline_read": lambda: baseline_seconds("kafka", BROKERS, topic),
            "baseline_read_parse": lambda: baseline_seconds("kafka", BROKERS, topic, "parse"),
            "fdw_count": lambda: timed(c, "SELECT count(*) FROM k1m"),
            "fdw_full_row": lambda: timed(c, full),
        })
        log("kafka: the same with a parallel scan (2 workers)")
        c.execute("SET max_parallel_workers_per_gather = 2")
        r["parallel_plan"] = "\n".join(x[0] for x in c.execute(f"EXPLAIN {full}"))
        r["parallel"] = side_by_side(rounds, {
            "fdw_count": lambda: timed(c, "SELECT count(*) FROM k1m"),
            "fdw_full_row": lambda: timed(c, full),
        })
        log("kafka: 1,000 messages by offset range, FDW and a live librdkafka consumer")
        r["range_1k"] = side_by_side(max(rounds, 10), {
            "raw_consumer": raw_range,
            "fdw": lambda: timed(c, rng),
            "fdw_decoded_no_transfer": lambda: timed(c, rng_decoded),
        })
        plan = "\n".join(x[0] for x in c.execute(f"EXPLAIN (ANALYZE, VERBOSE) {rng}"))
        r["range_1k"]["messages_fetched"] = int(plan.split("Messages Fetched: ")[1].split()[0])
        r["plan_rows_full_scan"] = c.execute(f"EXPLAIN (FORMAT JSON) SELECT * FROM k1m").fetchone()[0][0]["Plan"]["Plan Rows"]
    raw.close()
    r["ratios"] = {
        "count_serial_vs_plain_consumer": ratio(r["serial"], "fdw_count", "baseline_read"),
        "full_row_serial_vs_consumer_json": ratio(r["serial"], "fdw_full_row", "baseline_read_parse"),
        "count_parallel_vs_plain_consumer": r["serial"]["baseline_read"]["median"] / r["parallel"]["fdw_count"]["median"],
        "full_row_parallel_vs_consumer_json": r["serial"]["baseline_read_parse"]["median"] / r["parallel"]["fdw_full_row"]["median"],
        "range_1k_select_star_vs_raw_consumer": ratio(r["range_1k"], "fdw", "raw_consumer"),
        "range_1k_decoded_vs_raw_consumer": ratio(r["range_1k"], "fdw_decoded_no_transfer", "raw_consumer"),
    }
    log("kafka: peak backend RSS of the full-row scan")
    r["peak_backend_rss_mib"] = peak_rss_kb(full) / 1024
    return r


# ---------------------------------------------------------------------- Elasticsearch

def es_load(index, n):
    cnt = requests.get(f"{ES}/{index}/_count", timeout=30)
    if cnt.status_code == 200 and cnt.json()["count"] == n:
        return
    log(f"loading {n} documents into {index}")
    requests.delete(f"{ES}/{index}", timeout=60)
    requests.put(f"{ES}/{index}", json={
        "settings": {"number_of_shards": 2, "number_of_replicas": 0, "refresh_interval": "-1"},
        "mappings": {"properties": {"k": {"type": "keyword"}, "v": {"type": "long"}, "price": {"type": "double"},
                                    "ok": {"type": "boolean"}, "at": {"type": "date"}, "note": {"type": "text"}}}},
                 timeout=60).raise_for_status()
    chunk = 10_000
    for s in range(0, n, chunk):
        lines = []
        for i in range(s, min(n, s + chunk)):
            lines.append('{"index":{"_id":"%d"}}' % i)
            lines.append(json.dumps({"k": f"k{i % 100}", "v": i, "price": i * 0.25, "ok": i % 2 == 0,
                                     "at": 1714557600000 + i * 1000, "note": "lorem ipsum dolor"}))
        r = requests.post(f"{ES}/{index}/_bulk", data="\n".join(lines) + "\n",
                          headers={"Content-Type": "application/x-ndjson"}, timeout=300)
        r.raise_for_status()
        assert not r.json()["errors"]
    requests.put(f"{ES}/{index}/_settings", json={"index": {"refresh_interval": "1s"}}, timeout=60)
    requests.post(f"{ES}/{index}/_refresh", timeout=300)
    requests.post(f"{ES}/{index}/_forcemerge?max_num_segments=1", timeout=600)


def es_search(index, body):
    """The plain client for one request: POST _search, parse the JSON (what a client does)."""
    t = time.perf_counter()
    r = requests.post(f"{ES}/{index}/_search", json=body, timeout=300)
    r.raise_for_status()
    r.json()
    return time.perf_counter() - t


def es_composite(index, body):
    """A plain client paging a composite aggregation to the end."""
    t = time.perf_counter()
    body = json.loads(json.dumps(body))
    while True:
        r = requests.post(f"{ES}/{index}/_search", json=body, timeout=300).json()
        g = r["aggregations"]["g"]
        if len(g["buckets"]) < body["aggs"]["g"]["composite"]["size"] or "after_key" not in g:
            break
        body["aggs"]["g"]["composite"]["after"] = g["after_key"]
    return time.perf_counter() - t


def dsl_of(c, sql, label):
    plan = "\n".join(x[0] for x in c.execute(f"EXPLAIN (VERBOSE) {sql}"))
    return json.loads(plan.split(f"Elasticsearch {label}: ")[1].split("\n")[0])


def es_bench(rounds, ref_page=10_000):
    big, small = "bench_es_1m", "bench_es_100k"
    es_load(big, 1_000_000)
    es_load(small, 100_000)
    with conn() as c:
        # No batch_size: the wrapper sizes its pages itself.
        c.execute(f"CREATE SERVER eb FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url '{ES}')")
        for t, idx in (("e1m", big), ("e100k", small)):
            c.execute(f"""IMPORT FOREIGN SCHEMA "{idx}" FROM SERVER eb INTO public""")
            c.execute(f'ALTER FOREIGN TABLE "{idx}" RENAME TO {t}')
    # Every column decoded, no rows sent to the client; OFFSET 0 keeps the aggregate local (a
    # count(col) per column alone is computed by Elasticsearch, see count below).
    full = ("SELECT count(_id), count(k), count(v), count(price), count(ok), count(at), count(note)"
            " FROM (SELECT * FROM e1m OFFSET 0) s")
    remote_counts = "SELECT count(_id), count(k), count(v), count(price), count(ok), count(at), count(note) FROM e1m"
    star = "SELECT * FROM e1m"  # _score included: scores are not tracked without a query option
    sel = "SELECT _id, v FROM e1m WHERE k = 'k42' AND v >= 50000 AND v < 60000"
    group = "SELECT k, count(*), max(price), min(price) FROM e1m GROUP BY k"
    hourly = "SELECT date_trunc('hour', at), count(*) FROM e1m GROUP BY 1"
    r = {"documents": 1_000_000, "reference_page_size": ref_page}
    with conn() as c:
        c.execute("SET TimeZone = 'UTC'")
        assert c.execute("SELECT count(*) FROM e1m").fetchone()[0] == 1_000_000
        sel_body = dsl_of(c, sel, "Query")
        sel_body["size"] = 1000
        sel_body.pop("sort", None)
        group_body = dsl_of(c, group, "Aggregation")
        # EXPLAIN without ANALYZE names the zone a placeholder: the session's is UTC here.
        hourly_body = json.loads(json.dumps(dsl_of(c, hourly, "Aggregation")).replace("<session TimeZone>", "UTC"))
        r["dsl"] = {"selective": sel_body, "group_by": group_body, "hourly": hourly_body}
        log("es: full rows, FDW and a plain Rust point-in-time + search_after reader (10k pages)")
        r["full_row"] = side_by_side(rounds, {
            "baseline_pit_10k": lambda: baseline_seconds("es", ES, big, str(ref_page)),
            "fdw_full_row": lambda: timed(c, full),
            "fdw_select_star": lambda: timed(c, star),
        })
        log("es: count(*), selective query, GROUP BY, FDW and the same requests from a plain client")
        r["count_per_column_remote_ms"] = side_by_side(rounds, {"fdw": lambda: timed(c, remote_counts)})
        r["count"] = side_by_side(rounds, {
            "plain_count_api": lambda: (lambda t: (requests.get(f"{ES}/{big}/_count", timeout=60).json(),
                                                   time.perf_counter() - t)[1])(time.perf_counter()),
            "fdw": lambda: timed(c, "SELECT count(*) FROM e1m"),
        })
        r["selective_100_hits"] = side_by_side(max(rounds, 10), {
            "plain_client": lambda: es_search(big, sel_body),
            "fdw": lambda: timed(c, sel),
        })
        r["group_by_keyword"] = side_by_side(rounds, {
            "plain_client": lambda: es_composite(big, group_body),
            "fdw": lambda: timed(c, group),
        })
        r["group_by_hour"] = side_by_side(rounds, {
            "plain_client": lambda: es_composite(big, hourly_body),
            "fdw": lambda: timed(c, hourly),
        })
        c.execute("SET enable_partitionwise_aggregate = off")
    r["ratios"] = {
        "full_row_vs_pit_reader": ratio(r["full_row"], "fdw_full_row", "baseline_pit_10k"),
        "select_star_vs_pit_reader": ratio(r["full_row"], "fdw_select_star", "baseline_pit_10k"),
        "count_vs_count_api": ratio(r["count"], "fdw", "plain_count_api"),
        "selective_vs_plain_client": ratio(r["selective_100_hits"], "fdw", "plain_client"),
        "group_by_keyword_vs_plain_client": ratio(r["group_by_keyword"], "fdw", "plain_client"),
        "group_by_hour_vs_plain_client": ratio(r["group_by_hour"], "fdw", "plain_client"),
    }
    log("es: peak backend RSS of the 1M scan")
    r["peak_backend_rss_mib"] = peak_rss_kb(full) / 1024
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", action="store_true")
    ap.add_argument("--es", action="store_true")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every side-by-side comparison (>= 5)")
    a = ap.parse_args()
    both = not a.kafka and not a.es
    setup()
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
           "build": "release (PG_FLINK_PROFILE=release)", "rounds": a.rounds}
    path = REPO / "benchmarks" / "results" / "fdw.json"

    def record():  # after each part, so a failing part keeps the others' results
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(out)
        path.write_text(json.dumps(old, indent=2) + "\n")

    if a.kafka or both:
        out["kafka"] = kafka_bench(a.rounds)
        record()
    if a.es or both:
        out["elasticsearch"] = es_bench(a.rounds)
        record()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
