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

Usage: benchmarks/fdw.py [--kafka] [--es] [--runs 3]   (both when neither is given)
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


# ------------------------------------------------------------------------------ Kafka

def kafka_bench(runs, n=1_000_000):
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
    log("kafka: baseline consumer (read)")
    r["baseline_read"] = max((baseline("kafka", BROKERS, topic) for _ in range(runs)), key=lambda x: x["rows_per_s"])
    log("kafka: baseline consumer (read + JSON parse)")
    r["baseline_parse"] = max((baseline("kafka", BROKERS, topic, "parse") for _ in range(runs)), key=lambda x: x["rows_per_s"])
    with conn() as c:
        assert c.execute("SELECT count(*) FROM k1m").fetchone()[0] == n
        log("kafka: FDW count(*)")
        t = best(runs, lambda: timed(c, "SELECT count(*) FROM k1m"))
        r["fdw_count"] = {"seconds": t, "rows_per_s": n / t}
        log("kafka: FDW full-row scan")
        t = best(runs, lambda: timed(c, full))
        r["fdw_full_row"] = {"seconds": t, "rows_per_s": n / t}
        sql = "SELECT * FROM k1m WHERE _partition = 1 AND _offset >= 100000 AND _offset < 101000"
        t = statistics.median(timed(c, sql) for _ in range(max(runs, 5)))
        plan = "\n".join(x[0] for x in c.execute(f"EXPLAIN (ANALYZE, VERBOSE) {sql}"))
        fetched = int(plan.split("Messages Fetched: ")[1].split()[0])
        r["offset_range_1k"] = {"rows": len(c.execute(sql).fetchall()), "messages_fetched": fetched, "seconds": t}
    r["ratio_count_vs_read"] = r["fdw_count"]["rows_per_s"] / r["baseline_read"]["rows_per_s"]
    r["ratio_full_row_vs_read"] = r["fdw_full_row"]["rows_per_s"] / r["baseline_read"]["rows_per_s"]
    r["ratio_full_row_vs_parse"] = r["fdw_full_row"]["rows_per_s"] / r["baseline_parse"]["rows_per_s"]
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


def es_bench(runs, page=1000):
    big, small = "bench_es_1m", "bench_es_100k"
    es_load(big, 1_000_000)
    es_load(small, 100_000)
    with conn() as c:
        c.execute(f"CREATE SERVER eb FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (url '{ES}', batch_size '{page}')")
        for t, idx in (("e1m", big), ("e100k", small)):
            c.execute(f"""IMPORT FOREIGN SCHEMA "{idx}" FROM SERVER eb INTO public""")
            c.execute(f'ALTER FOREIGN TABLE "{idx}" RENAME TO {t}')
    full = "SELECT count(_id), count(k), count(v), count(price), count(ok), count(at), count(note) FROM e1m"
    r = {"documents": 1_000_000, "page_size": page}
    log("es: baseline PIT + search_after reader")
    r["baseline"] = max((baseline("es", ES, big, str(page)) for _ in range(runs)), key=lambda x: x["rows_per_s"])
    with conn() as c:
        assert c.execute("SELECT count(*) FROM e1m").fetchone()[0] == 1_000_000
        log("es: FDW full-row scan")
        t = best(runs, lambda: timed(c, full))
        r["fdw_full_row"] = {"seconds": t, "rows_per_s": 1_000_000 / t}
        sel = "SELECT _id, v FROM {t} WHERE k = 'k42' AND v >= 50000 AND v < 60000"
        for t_name, label in (("e100k", "selective_100k"), ("e1m", "selective_1m")):
            q = sel.format(t=t_name)
            c.execute(q).fetchall()  # warm
            r[label] = {"rows": len(c.execute(q).fetchall()),
                        "seconds_median": statistics.median(timed(c, q) for _ in range(max(runs, 10)))}
        plan = "\n".join(x[0] for x in c.execute("EXPLAIN (ANALYZE, VERBOSE) " + sel.format(t="e1m")))
        r["selective_dsl"] = plan.split("Elasticsearch Query: ")[1].split("\n")[0]
    r["ratio_full_row_vs_baseline"] = r["fdw_full_row"]["rows_per_s"] / r["baseline"]["rows_per_s"]
    r["selective_1m_vs_100k"] = r["selective_1m"]["seconds_median"] / r["selective_100k"]["seconds_median"]
    log("es: peak backend RSS of the 1M scan")
    r["peak_backend_rss_mib"] = peak_rss_kb(full) / 1024
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", action="store_true")
    ap.add_argument("--es", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    both = not a.kafka and not a.es
    setup()
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
           "build": "release (PG_FLINK_PROFILE=release)", "runs": a.runs}
    if a.kafka or both:
        out["kafka"] = kafka_bench(a.runs)
    if a.es or both:
        out["elasticsearch"] = es_bench(a.runs)
    path = REPO / "benchmarks" / "results" / "fdw.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(out)
    path.write_text(json.dumps(old, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
