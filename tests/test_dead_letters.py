"""Bad records (options.on_bad_record): with dead_letter the job keeps running, the good
records' results are exact, every record it could not decode is in flink.dead_letters() with its
partition and offset, and replaying the fixed records yields the missing results. skip leaves
them out; bad settings are refused with the field named. Against the real stack."""
import json
import random
import time

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ENV, connect, unique
from test_control import cleanup as stop, ctl, db, live_jobs, identity_of  # noqa: F401  (fixtures)
from test_worker import wait_for

SEED = 16016
TOTAL = 3000
PARTITIONS = 3


def make_topic(name, partitions=PARTITIONS):
    admin = AdminClient({"bootstrap.servers": ENV["PG_FLINK_KAFKA"]})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)


def produce(topic, records):
    """records: [(key, value bytes or None)] → [(partition, offset)] in order."""
    p = Producer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "linger.ms": 5})
    where = [None] * len(records)

    def done(i):
        def cb(err, msg):
            assert err is None, err
            where[i] = (msg.partition(), msg.offset())
        return cb

    for i, (k, v) in enumerate(records):
        p.produce(topic, v, key=k, on_delivery=done(i))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert all(w is not None for w in where)
    return where


def read_all(topic):
    """Every value of a topic (JSON-decoded), reading up to the current end offsets."""
    c = Consumer({"bootstrap.servers": ENV["PG_FLINK_KAFKA"], "group.id": unique("g"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
        parts = [TopicPartition(topic, p, 0) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        c.assign(parts)
        out, left = [], {p: e for p, e in ends.items() if e > 0}
        t0 = time.time()
        while left and time.time() - t0 < 30:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            out.append(json.loads(m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                left.pop(m.partition(), None)
        return out
    finally:
        c.close()


def records(rng):
    """TOTAL keyed records, about 1 % malformed in four ways: (records, {index: expected error})."""
    bad_kinds = [
        (lambda i: b'{"n": ' + str(i).encode(), "the value is not JSON"),            # truncated
        (lambda i: b"n=" + str(i).encode(), "the value is not JSON"),                 # not JSON
        (lambda i: json.dumps([i]).encode(), "the value is not a JSON object"),       # an array
        (lambda i: None, "the message has no value"),                                 # tombstone
    ]
    out, bad = [], {}
    for i in range(1, TOTAL + 1):
        if rng.random() < 0.01 or i in (7, 8, 9, 10):  # every kind at least once
            make, err = bad_kinds[(i if i <= 10 else rng.randrange(4)) % 4]
            out.append((f"k{i}".encode(), make(i)))
            bad[i - 1] = err
        else:
            out.append((f"k{i}".encode(), json.dumps({"n": i}).encode()))
    return out, bad


def pipeline(c, name, source, sink, mode):
    params = {"source": {"datasource": "ctl_kafka", "object": source, "columns": [{"name": "n", "type": "BIGINT"}]},
              "conditions": [{"column": "n", "op": ">", "value": 0}],
              "sink": {"datasource": "ctl_kafka", "object": sink}}
    c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
              (name, json.dumps(params), json.dumps({"on_bad_record": mode, "checkpoint_interval": "2 seconds"})))


def test_dead_letters_keep_the_job_running_results_exact_and_replay_fills_the_gap(db):
    rng = random.Random(SEED)
    name = unique("dl")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src)
    recs, bad = records(rng)
    where = produce(src, recs)
    good = sorted(i + 1 for i in range(TOTAL) if i not in bad)
    print(f"seed {SEED}: {len(bad)} malformed of {TOTAL}")
    assert 20 <= len(bad) <= 60
    pipeline(db, name, src, out, "dead_letter")
    rule = unique("dlr")
    db.execute("SELECT flink.create_alert(%s, %s, 'dead_letters', threshold => 5, \"window\" => '10 minutes')",
               (rule, name))
    try:
        db.execute("SELECT flink.start(%s)", (name,))
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        # The good records' results are exact: each once, nothing else.
        got = wait_for("all good records in the sink", lambda: (lambda v: v if len(v) >= len(good) else None)(read_all(out)),
                       120, lambda: len(read_all(out)))
        time.sleep(3)
        got = read_all(out)
        assert sorted(r["n"] for r in got) == good, f"seed {SEED}: sink differs from the good records"
        # Every malformed record is a dead letter, with where it came from and why.
        rows = wait_for(
            "every malformed record in flink.dead_letters",
            lambda: (lambda r: r if len(r) >= len(bad) else None)(db.execute(
                "SELECT source_topic, source_partition, source_offset, error, key, value, dead_letter_partition, "
                "dead_letter_offset, replayed_at FROM flink.dead_letters(%s)", (name,)).fetchall()),
            90, lambda: db.execute("SELECT count(*) FROM flink.dead_letters(%s)", (name,)).fetchone())
        assert len(rows) == len(bad), rows
        expect = {where[i]: (recs[i][0], recs[i][1], err) for i, err in bad.items()}
        seen = {}
        for topic, part, off, err, key, value, dpart, doff, replayed in rows:
            assert topic == src and replayed is None
            assert (part, off) in expect, f"seed {SEED}: a dead letter that was not malformed: {(part, off, err)}"
            k, v, e = expect[(part, off)]
            assert (bytes(key), None if value is None else bytes(value), err) == (k, v, e), (part, off)
            seen[(part, off)] = (dpart, doff)
        assert set(seen) == set(expect)
        # The job never failed: one live job, running, no restart.
        st = db.execute("SELECT actual, restarts FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()
        assert st == ("RUNNING", 0), st
        assert len(live_jobs(identity_of(db, name))) == 1
        # The worker counts them, and the dead_letters rule fires once.
        wait_for("pipeline_metrics.dead_letters", lambda: db.execute(
            "SELECT dead_letters FROM flink.pipeline_metrics WHERE pipeline = %s", (name,)).fetchone() == (len(bad),),
            60, lambda: db.execute("SELECT dead_letters FROM flink.pipeline_metrics WHERE pipeline = %s", (name,)).fetchone())
        wait_for("the dead_letters alert", lambda: db.execute(
            "SELECT count(*) FROM flink.alerts WHERE rule = %s AND pipeline = %s", (rule, name)).fetchone() == (1,), 30)
        # A replay that is rolled back produces nothing.
        with pytest.raises(psycopg.errors.DivisionByZero):
            with db.transaction():
                (dpart, doff), = [seen[where[min(bad)]]]
                assert db.execute("SELECT flink.replay_dead_letters(%s, %s, %s, %s)",
                                  (name, dpart, doff, json.dumps({"n": min(bad) + 1}))).fetchone() == (1,)
                db.execute("SELECT 1/0")
        assert db.execute("SELECT count(*) FROM flink.dead_letter_replay WHERE pipeline = %s", (name,)).fetchone() == (0,)
        # Fix each one and replay it: the missing results arrive, each once.
        with db.transaction():
            for i in sorted(bad):
                dpart, doff = seen[where[i]]
                assert db.execute("SELECT flink.replay_dead_letters(%s, %s, %s, %s)",
                                  (name, dpart, doff, json.dumps({"n": i + 1}))).fetchone() == (1,)
        everything = list(range(1, TOTAL + 1))
        wait_for("the replayed records' results", lambda: len(read_all(out)) >= TOTAL, 90, lambda: len(read_all(out)))
        time.sleep(3)
        assert sorted(r["n"] for r in read_all(out)) == everything, f"seed {SEED}: after the replay"
        assert db.execute("SELECT count(*) FROM flink.dead_letters(%s) WHERE replayed_at IS NULL",
                          (name,)).fetchone() == (0,)
        # Nothing is left to replay: all were.
        assert db.execute("SELECT flink.replay_dead_letters(%s)", (name,)).fetchone() == (0,)
        with pytest.raises(psycopg.errors.UndefinedObject) as e:
            db.execute("SELECT flink.replay_dead_letters(%s, 0, 999999)", (name,))
        assert e.value.diag.message_hint
    finally:
        db.execute("SELECT flink.drop_alert(%s, if_exists => true)", (rule,))
        stop(db, name)


def test_skip_leaves_bad_records_out_and_keeps_no_dead_letters(db):
    rng = random.Random(SEED + 1)
    name = unique("skp")
    src, out = f"{name}_in", f"{name}_out"
    make_topic(src, 1)
    recs, bad = records(rng)
    recs, bad = recs[:600], {i: e for i, e in bad.items() if i < 600}
    produce(src, recs)
    good = sorted(i + 1 for i in range(600) if i not in bad)
    pipeline(db, name, src, out, "skip")
    try:
        db.execute("SELECT flink.start(%s)", (name,))
        db.execute("SELECT flink.wait(%s, 'running', '90 seconds')", (name,))
        wait_for("the good records", lambda: len(read_all(out)) >= len(good), 90, lambda: len(read_all(out)))
        time.sleep(2)
        assert sorted(r["n"] for r in read_all(out)) == good
        assert db.execute("SELECT actual, restarts FROM flink.pipeline_status WHERE pipeline = %s",
                          (name,)).fetchone() == ("RUNNING", 0)
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            db.execute("SELECT * FROM flink.dead_letters(%s)", (name,))
        assert name in str(e.value) and "dead_letter" in e.value.diag.message_hint
    finally:
        stop(db, name)


@pytest.mark.parametrize("template,params,options,msg", [
    ("filter_alert", None, {"on_bad_record": "ignore"}, "options.on_bad_record: must be fail, skip or dead_letter"),
    ("filter_alert", None, {"freshness": "soon"}, "options.freshness"),
    ("sql", {"sql": "INSERT INTO {{ctl_kafka.x_out}} SELECT n FROM {{ctl_kafka.x_in}}",
             "tables": {"ctl_kafka.x_in": {"columns": [{"name": "n", "type": "BIGINT"}]},
                        "ctl_kafka.x_out": {"columns": [{"name": "n", "type": "BIGINT"}]}}},
     {"on_bad_record": "dead_letter"}, "dead_letter is not available for raw sql pipelines"),
])
def test_bad_settings_are_refused_naming_the_field(db, template, params, options, msg):
    name = unique("bad")
    if params is None:
        params = {"source": {"datasource": "ctl_kafka", "object": "x_in", "columns": [{"name": "n", "type": "BIGINT"}]},
                  "conditions": [{"column": "n", "op": ">", "value": 0}],
                  "sink": {"datasource": "ctl_kafka", "object": "x_out"}}
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("SELECT * FROM flink.create_pipeline(%s, %s, %s, %s)",
                   (name, template, json.dumps(params), json.dumps(options)))
    assert msg in str(e.value) and name in str(e.value), str(e.value)
    assert e.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = %s", (name,)).fetchone() == (0,)
