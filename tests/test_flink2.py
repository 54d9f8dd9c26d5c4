"""Flink 2.x beside 1.20 (issue #15): one database drives both clusters of the stack (1.20.3 on
8081/8083, 2.3.0 on 8091/8093, `scripts/stack.sh flink2 up`). The 2.x subset of the suite: the
clusters' versions are discovered and shown; the templates whose connectors exist for 2.x
validate on the 2.x gateway; a pipeline starts, stops with a savepoint, resumes from it and
restarts on 2.x; a savepoint written by 1.20 is refused on 2.x with its SQLSTATE and hint; a
pipeline moves from 1.20 to 2.x and back with never two live jobs."""
import json
import threading
import time

import psycopg
import pytest
import requests

from conftest import ENV, unique
from lifecycle_invariants import (create_filter_pipeline, make_topic, pg_connect, scratch_database,
                                  wait_for)

REST1, GW1 = ENV["PG_FLINK_REST_URL"], ENV["PG_FLINK_GATEWAY_URL"]
REST2 = ENV.get("PG_FLINK2_REST_URL", "http://127.0.0.1:8091")
GW2 = ENV.get("PG_FLINK2_GATEWAY_URL", "http://127.0.0.1:8093")
EXAMPLES = json.loads(open(__file__.rsplit("/", 1)[0] + "/pipelines/examples.json").read())
# Examples whose connectors exist for Flink 2.x: no Elasticsearch 7 and no Postgres CDC build
# loads on 2.x (docs/stack.md, version matrix).
KIND = {name: ds["kind"] for name, ds in EXAMPLES["catalog"].items()}


def runs_on_2x(p):
    text = json.dumps(p["params"])
    return ('"cdc": true' not in text
            and not any(f'"{n}"' in text for n, k in KIND.items() if k == "elasticsearch"))


def jobs(rest):
    return requests.get(rest + "/jobs/overview", timeout=5).json()["jobs"]


def live(rest, pipeline):
    return [j for j in jobs(rest) if f"/{pipeline}/v" in j["name"]
            and j["state"] not in ("FAILED", "CANCELED", "FINISHED")]


def version(rest):
    return requests.get(rest + "/overview", timeout=5).json()["flink-version"]


@pytest.fixture(scope="module")
def two():
    """A scratch database with both clusters ('local' 1.20, 'f2' 2.x) and a Kafka datasource."""
    assert version(REST2).startswith("2."), "the Flink 2.x cluster is not running: scripts/stack.sh flink2 up"
    with scratch_database(prefix="pgflink_f2") as db:
        with pg_connect(db) as c:
            c.execute("SELECT * FROM flink.register_cluster('f2', %s, %s)", (GW2, REST2))
        yield db


def status(c, name):
    return c.execute("SELECT actual, flink_job_id FROM flink.pipeline_status WHERE pipeline = %s", (name,)).fetchone()


def wait_running(c, name, rest, timeout=120):
    return wait_for(f"{name} RUNNING on {rest}",
                    lambda: (lambda s: s if s and s[0] == "RUNNING" and any(j["jid"] == s[1] for j in live(rest, name)) else None)(status(c, name)),
                    timeout=timeout, interval=0.5)


def test_both_clusters_show_their_real_versions(two):
    want = {"local": version(REST1), "f2": version(REST2)}
    assert want["local"].startswith("1.20") and want["f2"].startswith("2."), want
    with pg_connect(two) as c:
        for cluster, v in want.items():
            name, ok, seen, _, detail = c.execute("SELECT * FROM flink.test_cluster(%s)", (cluster,)).fetchone()
            assert (name, ok, seen) == (cluster, True, v), detail
            assert detail.count(f"Flink {v}") == 2, detail  # the JobManager's and the gateway's
        # No name: both clusters, the default first.
        rows = c.execute("SELECT cluster, ok, flink_version FROM flink.test_cluster()").fetchall()
        assert rows == [("local", True, want["local"]), ("f2", True, want["f2"])], rows
        # The worker records them in the catalog.
        seen = wait_for("flink.clusters.flink_version of both clusters",
                        lambda: dict(c.execute("SELECT name, flink_version FROM flink.clusters").fetchall()),
                        until=lambda v: v == want, timeout=30, interval=0.5)
        assert seen == want


def test_a_result_with_a_type_flink_2_cannot_write_as_json_is_returned_as_text(two):
    """Flink 2.3's gateway answers 500 "Could not map response to JSON" for a VARIANT column;
    pg_flink reads that page again as plain text instead of failing. The same query on 1.20
    (no VARIANT there) fails with Flink's own message."""
    query = "SELECT PARSE_JSON('{\"a\": [1, 2]}') AS v, 7 AS n, CAST(NULL AS STRING) AS z"
    with pg_connect(two) as c:
        cols, rows = c.execute("SELECT columns, rows FROM flink.execute_sql(%s, gateway_url => %s)",
                               (query, GW2)).fetchone()
        assert cols == ["v", "n", "z"], cols
        assert len(rows) == 1 and json.loads(rows[0][0]) == {"a": [1, 2]} and rows[0][1:] == ["7", None], rows
        with pytest.raises(psycopg.Error, match="PARSE_JSON"):
            c.execute("SELECT * FROM flink.execute_sql(%s, gateway_url => %s)", (query, GW1))


@pytest.mark.parametrize("example", [p for p in EXAMPLES["pipelines"] if runs_on_2x(p)], ids=lambda p: p["name"])
def test_template_examples_validate_on_flink_2(two, example):
    with pg_connect(two) as c:
        for name, ds in EXAMPLES["catalog"].items():
            if ds["kind"] != "elasticsearch":
                c.execute("SELECT * FROM flink.register_datasource(%s, %s, %s, %s)",
                          (name, ds["kind"], json.dumps(ds["options"]), json.dumps(ds.get("secrets", {}))))
        opts = dict(example.get("options") or {}, cluster="f2")
        name = unique("f2v")
        try:
            c.execute("SELECT * FROM flink.create_pipeline(%s, %s, %s, %s)",
                      (name, example["template"], json.dumps(example["params"]), json.dumps(opts)))
        except psycopg.errors.UndefinedObject as e:
            pytest.fail(f"{example['name']}: {e}")
        ok, detail = c.execute("SELECT ok, detail FROM flink.validate(%s)", (name,)).fetchone()
        assert ok, f"{example['name']} on Flink {version(REST2)}: {detail}"


def test_start_stop_with_savepoint_resume_and_restart_on_flink_2(two):
    with pg_connect(two) as c:
        name = unique("f2l")
        create_filter_pipeline(c, name, "lc_kafka", options={"cluster": "f2"})
        c.execute("SELECT flink.start(%s)", (name,))
        _, jid = wait_running(c, name, REST2)
        assert live(REST1, name) == []
        c.execute("SELECT flink.stop(%s)", (name,))
        c.execute("SELECT flink.wait(%s, 'stopped', '90 seconds')", (name,))
        path, fv = c.execute("SELECT path, flink_version FROM flink.savepoints WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                             (name,)).fetchone()
        assert path and fv == version(REST2), (path, fv)
        c.execute("SELECT flink.start(%s, 'latest')", (name,))
        _, jid2 = wait_running(c, name, REST2)
        assert jid2 != jid
        assert c.execute("SELECT savepoint_used FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                         (name,)).fetchone() == (path,)
        c.execute("SELECT flink.restart(%s)", (name,))
        _, jid3 = wait_for("a restarted job", lambda: (lambda s: s if s and s[0] == "RUNNING" and s[1] not in (jid, jid2) else None)(status(c, name)),
                           timeout=120, interval=0.5)
        used = c.execute("SELECT savepoint_used FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (name,)).fetchone()[0]
        assert used and used != path, "the restart resumes from the savepoint its stop took"
        assert [j["jid"] for j in live(REST2, name)] == [jid3]
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,))


def test_a_1_20_savepoint_is_refused_on_flink_2_unless_allowed(two):
    with pg_connect(two) as c:
        name = unique("f2s")
        create_filter_pipeline(c, name, "lc_kafka")  # on 'local' (1.20)
        c.execute("SELECT flink.start(%s)", (name,))
        wait_running(c, name, REST1)
        c.execute("SELECT flink.stop(%s)", (name,))
        c.execute("SELECT flink.wait(%s, 'stopped', '90 seconds')", (name,))
        path, fv = c.execute("SELECT path, flink_version FROM flink.savepoints WHERE pipeline = %s", (name,)).fetchone()
        assert fv.startswith("1.20"), fv
        create_filter_pipeline(c, name, "lc_kafka", options={"cluster": "f2"})  # the same pipeline, now on 2.x
        for sp in ("latest", path):
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
                c.execute("SELECT flink.start(%s, %s)", (name, sp))
            msg = e.value.diag.message_primary
            assert name in msg and fv in msg and version(REST2) in msg and '"f2"' in msg, msg
            assert "restore_across_versions" in e.value.diag.message_hint
        assert c.execute("SELECT count(*) FROM flink.pipeline_state WHERE pipeline = %s AND desired = 'running'",
                         (name,)).fetchone() == (0,)
        # Allowed for one transaction (rolled back here: whether Flink can read it is Flink's call).
        with pytest.raises(psycopg.errors.DivisionByZero):
            with c.transaction():
                c.execute("SET LOCAL pg_flink.restore_across_versions = on")
                assert c.execute("SELECT flink.start(%s, 'latest')", (name,)).fetchone() == ("running",)
                c.execute("SELECT 1/0")
        # Fresh state is always allowed.
        c.execute("SELECT flink.start(%s)", (name,))
        wait_running(c, name, REST2)
        c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
        c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,))


def test_a_pipeline_moves_from_1_20_to_2_and_back_without_a_duplicate_job(two):
    with pg_connect(two) as c:
        name = unique("f2m")
        create_filter_pipeline(c, name, "lc_kafka")
        c.execute("SELECT flink.start(%s)", (name,))
        wait_running(c, name, REST1)
        seen, stop = [], threading.Event()

        def watch():  # live jobs of the pipeline on both clusters, all along
            while not stop.is_set():
                try:
                    seen.append((len(live(REST1, name)), len(live(REST2, name))))
                except requests.RequestException:
                    pass
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for cluster, rest, other in (("f2", REST2, REST1), ("local", REST1, REST2)):
                create_filter_pipeline(c, name, "lc_kafka", options={"cluster": cluster})
                assert c.execute("SELECT needs_restart FROM flink.pipelines WHERE name = %s", (name,)).fetchone() == (True,)
                c.execute("SELECT flink.restart(%s)", (name,))
                wait_for(f"{name} running on {cluster} only",
                         lambda: status(c, name)[0] == "RUNNING" and len(live(rest, name)) == 1 and live(other, name) == [],
                         timeout=150, interval=0.5)
                job_cluster = c.execute("SELECT cluster FROM flink.jobs WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                        (name,)).fetchone()[0]
                assert job_cluster == cluster
                notes = [r[0] for r in c.execute("SELECT detail FROM flink.job_events WHERE pipeline = %s AND detail LIKE 'savepoint %%'",
                                                 (name,)).fetchall()]
                assert any("started without it" in n for n in notes), f"the move to {cluster} must say it started fresh: {notes}"
        finally:
            stop.set()
            watcher.join()
            c.execute("SELECT flink.stop(%s, with_savepoint => false)", (name,))
            c.execute("SELECT flink.wait(%s, 'stopped', '60 seconds')", (name,))
        assert all(a + b <= 1 for a, b in seen), f"two live jobs at once: {sorted(set(seen))}"
        assert (1, 0) in seen and (0, 1) in seen
