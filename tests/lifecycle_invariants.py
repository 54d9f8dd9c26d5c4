"""Pipeline lifecycle: a toolkit for the lifecycle tests and a stateful property checker.

The toolkit (used by tests/test_lifecycle.py) talks to the real stack: Flink's REST API (jobs and
their names), Postgres databases with the extension, pg_dump/pg_restore, a postmaster kill -9 and
a JobManager restart.

The checker drives seeded random steps (create/alter/start/stop/restart/drop pipelines,
drop_cluster, DROP/CREATE EXTENSION, new databases, dump+restore under a new name, DROP DATABASE,
postmaster kill -9, JobManager restart, a crash-looping job) in scratch databases it creates, and
after every step waits for the worker to settle and checks:

  (i)   each pipeline whose desired state is running has exactly one live Flink job with its
        identity (pg_flink/<sysid>/<db oid>/<db name>/<pipeline>/v<n>);
  (ii)  no live Flink job carries this instance's identity for one of the checker's databases
        without a pipeline in the database its name names that wants it running;
  (iii) every job state change is in flink.job_events: each job's state is the to_state of its
        newest event, and each event starts where the previous one ended;
  (iv)  for a running pipeline, flink.pipeline_status.actual is the JobManager's state of the
        job it tracks (flink_job_id);
  and that the database agrees with the checker's model (pipelines, desired states, DETACHED
  copies, deployed versions, drops recorded in flink.dropped_pipelines).

Entry point: run(seed, steps, deadline_s). Command line (scripts/invariants-long.sh):
    python -m lifecycle_invariants --seed 42 --steps 300 --deadline 14400
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import psycopg  # noqa: E402
import requests  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from conftest import ENV, FLINK_SERVICE, stack  # noqa: E402

REST_URL = ENV["PG_FLINK_REST_URL"]
GATEWAY_URL = ENV["PG_FLINK_GATEWAY_URL"]
KAFKA = ENV["PG_FLINK_KAFKA"]
PG_BIN = "/usr/lib/postgresql/15/bin"
PGDATA = pathlib.Path(ENV["PG_FLINK_STACK"]) / "run" / "pgdata"
PG_LOG = pathlib.Path(ENV["PG_FLINK_LOGS"]) / "postgres.log"

# Flink job states after which a job never runs again.
FLINK_TERMINAL = {"FAILED", "CANCELED", "FINISHED"}
# pipeline_status.actual of a pipeline that runs nothing.
STOPPED_LIKE = {None, "STOPPED", "CANCELED", "FINISHED", "FAILED", "LOST", "DETACHED", "SUBMIT_FAILED"}
# States a crash-looping job moves through (Flink's and pg_flink's view may lag each other).
LOOPING = {"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "FAILING"}

# Flink restarts the job every second, a thousand times: a runtime failure becomes a restart loop.
CRASH_LOOP_OPTIONS = {"flink": {"restart-strategy.type": "fixed-delay",
                                "restart-strategy.fixed-delay.attempts": "1000",
                                "restart-strategy.fixed-delay.delay": "1 s"}}


# ------------------------------------------------------------------------------------------------
# Polling
# ------------------------------------------------------------------------------------------------
def wait_for(what, probe, until=bool, timeout=30.0, interval=0.25):
    """Polls probe() until until(value) holds; returns the value, or fails naming `what` and the
    last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last seen: {value!r})")
        time.sleep(interval)


def holds_for(what, probe, must, duration, interval=0.25):
    """Polls probe() for `duration` seconds; fails as soon as must(value) is false."""
    deadline = time.monotonic() + duration
    value = None
    while time.monotonic() < deadline:
        value = probe()
        assert must(value), f"{what}: broken after {duration - (deadline - time.monotonic()):.1f} s (seen: {value!r})"
        time.sleep(interval)
    return value


# ------------------------------------------------------------------------------------------------
# Flink
# ------------------------------------------------------------------------------------------------
def flink_jobs():
    """Every job the JobManager knows: [{"jid", "name", "state", ...}]."""
    r = requests.get(REST_URL + "/jobs/overview", timeout=10)
    r.raise_for_status()
    return r.json()["jobs"]


def is_live(job):
    return job["state"] not in FLINK_TERMINAL


def live_jobs(prefix=None, jobs=None):
    """Live jobs whose name starts with prefix (all live jobs without one)."""
    return [j for j in (flink_jobs() if jobs is None else jobs)
            if is_live(j) and (prefix is None or j["name"].startswith(prefix))]


def live_jobs_of_pipeline(pipeline, jobs=None):
    """Live jobs of a pipeline name in any database and any naming scheme (names are unique)."""
    return [j for j in (flink_jobs() if jobs is None else jobs) if is_live(j) and f"/{pipeline}/v" in j["name"]]


def flink_job_state(jid, jobs=None):
    for j in flink_jobs() if jobs is None else jobs:
        if j["jid"] == jid:
            return j["state"]
    return None


def cancel_flink_job(jid):
    requests.patch(f"{REST_URL}/jobs/{jid}", params={"mode": "cancel"}, timeout=10)


def cancel_jobs(jobs):
    for j in jobs:
        with contextlib.suppress(requests.RequestException):
            cancel_flink_job(j["jid"])


def root_exception(jid, limit=300):
    """The first line of Flink's root exception of a job ('' if none or unreadable)."""
    try:
        text = requests.get(f"{REST_URL}/jobs/{jid}/exceptions", timeout=10).json().get("root-exception") or ""
    except (requests.RequestException, ValueError):
        return ""
    return text.strip().splitlines()[0][:limit] if text.strip() else ""


def slots_available():
    return requests.get(REST_URL + "/overview", timeout=10).json().get("slots-available")


# ------------------------------------------------------------------------------------------------
# Job identity
# ------------------------------------------------------------------------------------------------
def encode_database_name(name):
    return name.replace("%", "%25").replace("/", "%2F")


def decode_database_name(text):
    return text.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


def database_identity(c):
    """(system identifier, database oid, database name) of the connection's database."""
    row = c.execute("SELECT s.system_identifier::text, d.oid::bigint, d.datname "
                    "FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()").fetchone()
    return str(row[0]), int(row[1]), row[2]


def database_prefix(c):
    """pg_flink/<sysid>/<oid>/<encoded name>/: every job of the database starts with it."""
    sysid, oid, name = database_identity(c)
    return f"pg_flink/{sysid}/{oid}/{encode_database_name(name)}/"


def pipeline_prefix(c, pipeline):
    return f"{database_prefix(c)}{pipeline}/v"


def expected_job_name(c, pipeline, version):
    return f"{pipeline_prefix(c, pipeline)}{version}"


@dataclasses.dataclass(frozen=True)
class JobName:
    system_identifier: str
    database_oid: int
    database: str
    pipeline: str
    version: int


def parse_job_name(name):
    """A pg_flink job name taken apart; None for any other name."""
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "pg_flink" or not parts[4]:
        return None
    tag, sysid, oid, db, pipeline, version = parts
    if not (sysid.isdigit() and oid.isdigit() and version.startswith("v") and version[1:].isdigit()):
        return None
    return JobName(sysid, int(oid), decode_database_name(db), pipeline, int(version[1:]))


def jobs_naming_database(database, sysid=None, jobs=None):
    """Live jobs named after a database: by the identity's database name, or the older
    pg_flink/<database>/<pipeline>/v<n> scheme."""
    out = []
    for j in live_jobs(jobs=jobs):
        parsed = parse_job_name(j["name"])
        if parsed and parsed.database == database and (sysid is None or parsed.system_identifier == sysid):
            out.append(j)
        elif j["name"].startswith(f"pg_flink/{database}/"):
            out.append(j)
    return out


# ------------------------------------------------------------------------------------------------
# Postgres
# ------------------------------------------------------------------------------------------------
def pg_connect(dbname, autocommit=True, **kw):
    """A connection to any database (names with '/', '%' or spaces are fine)."""
    return psycopg.connect(host=ENV["PGHOST"], port=ENV["PGPORT"], user=ENV["PGUSER"], dbname=dbname,
                           autocommit=autocommit, connect_timeout=10, **kw)


def is_disconnect(error):
    """Whether a psycopg error means the server went away (restart, crash, kill -9)."""
    state = getattr(error, "sqlstate", None)
    return isinstance(error, psycopg.OperationalError) and (state is None or state.startswith("08")
                                                             or state in ("57P01", "57P02", "57P03"))


def wait_for_postgres(timeout=180):
    def up():
        try:
            with pg_connect("postgres") as c:
                return c.execute("SELECT 1").fetchone()[0] == 1
        except psycopg.Error:
            return False
    wait_for("Postgres accepts connections", up, timeout=timeout, interval=1)


def create_database(name):
    with pg_connect("postgres") as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name, force=True, if_exists=True):
    stmt = sql.SQL("DROP DATABASE {if_exists}{name}{force}").format(
        if_exists=sql.SQL("IF EXISTS " if if_exists else ""), name=sql.Identifier(name),
        force=sql.SQL(" WITH (FORCE)" if force else ""))
    with pg_connect("postgres") as c:
        c.execute(stmt)


def database_exists(name):
    with pg_connect("postgres") as c:
        return c.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 1


def register(c, cluster, datasource):
    """A cluster (the stack's Flink) and a Kafka datasource in the connection's database."""
    c.execute("SELECT * FROM flink.register_cluster(%s, %s, %s)", (cluster, GATEWAY_URL, REST_URL))
    c.execute("SELECT * FROM flink.register_datasource(%s, 'kafka', %s)",
              (datasource, json.dumps({"bootstrap_servers": KAFKA})))


def install(dbname, cluster="local", datasource="lc_kafka"):
    with pg_connect(dbname) as c:
        c.execute("CREATE EXTENSION pg_flink")
        register(c, cluster, datasource)


@contextlib.contextmanager
def scratch_database(prefix="pgflink_lc", name=None, cluster="local", datasource="lc_kafka"):
    """A new database with the extension, a cluster and a Kafka datasource; dropped afterwards
    (WITH FORCE), and any job still named after it cancelled."""
    name = name or f"{prefix}_{uuid.uuid4().hex[:10]}"
    create_database(name)
    try:
        install(name, cluster, datasource)
        yield name
    finally:
        drop_database_surely(name)
        with contextlib.suppress(requests.RequestException):
            cancel_jobs(jobs_naming_database(name))


def drop_database_surely(name):
    """DROP DATABASE IF EXISTS ... WITH (FORCE), waiting for Postgres if it is being restarted."""
    for _ in range(2):
        try:
            drop_database(name, force=True)
            return
        except psycopg.Error as e:
            if not is_disconnect(e):
                raise
            with contextlib.suppress(AssertionError):
                wait_for_postgres(timeout=120)


def pg_tool(tool, *args, timeout=300):
    r = subprocess.run([f"{PG_BIN}/{tool}", "-h", ENV["PGHOST"], "-p", ENV["PGPORT"], "-U", ENV["PGUSER"], *args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{tool} {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}"
    return r


def dump_database(dbname, path):
    pg_tool("pg_dump", "-Fc", "-f", str(path), "-d", dbname)


def restore_copy(dbname, new_name):
    """pg_dump -Fc of dbname, createdb new_name, pg_restore into it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "db.dump"
        dump_database(dbname, path)
        pg_tool("createdb", new_name)
        pg_tool("pg_restore", "-d", new_name, str(path))


def restore_in_place(dbname):
    """pg_dump -Fc of dbname restored over itself (pg_restore --clean --if-exists)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "db.dump"
        dump_database(dbname, path)
        pg_tool("pg_restore", "--clean", "--if-exists", "-d", dbname, str(path))


def kill_postmaster_and_restart(timeout=180):
    """kill -9 of the postmaster, then pg_ctl start (retried while old backends still hold the
    shared memory) until Postgres accepts connections."""
    pid = int((PGDATA / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)

    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    wait_for(f"postmaster {pid} exits after SIGKILL", gone, timeout=30)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with pg_connect("postgres") as c:
                c.execute("SELECT 1")
            return
        except psycopg.Error:
            pass
        r = subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", str(PGDATA), "-l", str(PG_LOG),
                            "-w", "-t", "60", "start"], capture_output=True, text=True, timeout=90)
        last = r.stdout + r.stderr
        if r.returncode != 0:
            time.sleep(1)
    raise AssertionError(f"Postgres did not come back after kill -9 within {timeout} s: {last}")


def restart_jobmanager():
    r = stack("stop", FLINK_SERVICE)
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack("start", FLINK_SERVICE, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------------------------------------
# Pipelines
# ------------------------------------------------------------------------------------------------
def make_topic(topic):
    p = Producer({"bootstrap.servers": KAFKA})
    p.produce(topic, json.dumps({"n": 1}).encode())
    assert p.flush(10) == 0, f"Kafka did not take a message for topic {topic}"


def filter_params(datasource, source_topic, sink_topic, threshold=0):
    return {"source": {"datasource": datasource, "object": source_topic, "columns": [{"name": "n", "type": "BIGINT"}]},
            "conditions": [{"column": "n", "op": ">", "value": threshold}],
            "sink": {"datasource": datasource, "object": sink_topic}}


def create_filter_pipeline(c, name, datasource, threshold=0, options=None, source_topic=None):
    """A Kafka -> Kafka filter_alert pipeline reading a topic that exists (created here); returns
    (pipeline, version, changed)."""
    if source_topic is None:
        source_topic = f"{name}_in"
        make_topic(source_topic)
    return c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)",
                     (name, json.dumps(filter_params(datasource, source_topic, f"{name}_out", threshold)),
                      json.dumps(options or {}))).fetchone()


def create_crash_looping_pipeline(c, name, datasource):
    """A pipeline whose job fails at runtime (its source topic is never created) and that Flink
    restarts every second."""
    return create_filter_pipeline(c, name, datasource, options=CRASH_LOOP_OPTIONS,
                                  source_topic=f"{name}_never_created")


def pipeline_status(c, pipeline):
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM flink.pipeline_status WHERE pipeline = %s", (pipeline,)).fetchone()


# ------------------------------------------------------------------------------------------------
# The checker
# ------------------------------------------------------------------------------------------------
class InvariantViolation(AssertionError):
    """An invariant that did not hold, or a step that failed; the message has the seed, the step
    and the steps so far."""

    def __init__(self, message, seed=None, step=None):
        super().__init__(message)
        self.seed, self.step = seed, step


@dataclasses.dataclass
class Pipe:
    name: str
    threshold: int
    version: int = 1
    desired: str = "stopped"
    crash: bool = False
    detached: bool = False                # a restored copy's pipeline that ran in the original
    expect_version: int | None = None     # the version its job runs after a start/restart
    replaced_job: str | None = None       # a restart replaces this Flink job with a new one


@dataclasses.dataclass
class ScratchDb:
    name: str
    pipelines: dict
    copy_of: str | None = None
    pending_drops: set = dataclasses.field(default_factory=set)  # dropped while running


class Checker:
    CLUSTER = "inv"
    DATASOURCE = "inv_kafka"
    MAX_WANTED = 3        # pipelines wanting to run at once (the TaskManager has 4 slots)
    MAX_DBS = 3
    MAX_PIPELINES_PER_DB = 5
    SETTLE_S = 60

    def __init__(self, seed, log=print):
        self.seed = seed
        self.rng = random.Random(seed)
        self.log = log
        self.tag = uuid.uuid4().hex[:6]
        self.counter = 0
        self.dbs: dict[str, ScratchDb] = {}
        self.ever: set[str] = set()
        self.sysid = None
        self.history: list[str] = []
        self.step_no = 0
        self.interruptions = 0
        self.settle_timeout = self.SETTLE_S
        self.expect_disconnect = False
        self.current = "setup"

    # -------------------------------------------------------------------- names and choices
    def new_name(self, kind):
        self.counter += 1
        return f"inv_{self.tag}_{kind}{self.counter}"

    def new_db_name(self):
        self.counter += 1
        # Now and then a name that has to be percent-encoded in job names.
        odd = "/%" if self.rng.random() < 0.25 else ""
        return f"pgflink_inv{odd}_{self.tag}_{self.counter}"

    def pipes(self, pred=lambda db, p: True):
        return [(db, p) for _, db in sorted(self.dbs.items())
                for _, p in sorted(db.pipelines.items()) if pred(db, p)]

    def wanted(self):
        return len(self.pipes(lambda db, p: p.desired == "running"))

    def pick(self, items):
        return items[self.rng.randrange(len(items))]

    # -------------------------------------------------------------------- steps
    def steps(self):
        """(weight, applicable, action) of every kind of step."""
        room = self.wanted() < self.MAX_WANTED
        stopped = self.pipes(lambda db, p: p.desired == "stopped")
        running = self.pipes(lambda db, p: p.desired == "running")
        plain = self.pipes(lambda db, p: not p.crash)
        crash_exists = bool(self.pipes(lambda db, p: p.crash))
        return [
            (3.0, any(len(d.pipelines) < self.MAX_PIPELINES_PER_DB for d in self.dbs.values()), self.step_create),
            (2.0, bool(plain), self.step_alter),
            (5.0, bool(stopped) and room, self.step_start),
            (3.0, bool(running), self.step_stop),
            (2.0, bool(self.pipes(lambda db, p: not p.crash and (p.desired == "running" or room))), self.step_restart),
            (2.0, bool(self.pipes()), self.step_drop_pipeline),
            (0.8, bool(self.dbs), self.step_drop_cluster),
            (0.5, bool(self.dbs), self.step_reinstall_extension),
            (0.8, len(self.dbs) < self.MAX_DBS, self.step_new_database),
            (1.0, len(self.dbs) < self.MAX_DBS and bool(running), self.step_copy_database),
            (0.5, len(self.dbs) >= 2, self.step_drop_database),
            (0.8, room and not crash_exists, self.step_crash_loop),
            (0.4, True, self.step_kill_postmaster),
            (0.2, True, self.step_restart_jobmanager),
        ]

    def choose(self):
        options = [(w, action) for w, ok, action in self.steps() if ok]
        total = sum(w for w, _ in options)
        x = self.rng.uniform(0, total)
        for w, action in options:
            x -= w
            if x <= 0:
                return action
        return options[-1][1]

    def step_create(self):
        db = self.pick([d for _, d in sorted(self.dbs.items()) if len(d.pipelines) < self.MAX_PIPELINES_PER_DB])
        name, threshold = self.new_name("p"), self.rng.randint(0, 100)
        with pg_connect(db.name) as c:
            row = create_filter_pipeline(c, name, self.DATASOURCE, threshold)
        assert tuple(row) == (name, 1, True), f"create_pipeline returned {row}"
        db.pipelines[name] = Pipe(name, threshold)
        return f"create {db.name}.{name} (n > {threshold})"

    def step_alter(self):
        db, p = self.pick(self.pipes(lambda db, p: not p.crash))
        threshold = p.threshold + self.rng.randint(1, 50)
        with pg_connect(db.name) as c:
            row = c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s)",
                            (p.name, json.dumps(filter_params(self.DATASOURCE, f"{p.name}_in", f"{p.name}_out", threshold)))).fetchone()
        assert tuple(row) == (p.name, p.version + 1, True), f"altering {p.name} returned {row}"
        p.version, p.threshold = p.version + 1, threshold
        return f"alter {db.name}.{p.name} -> v{p.version} (n > {threshold})"

    def step_start(self):
        db, p = self.pick(self.pipes(lambda db, p: p.desired == "stopped"))
        with pg_connect(db.name) as c, c.transaction():
            c.execute("SELECT flink.start(%s)", (p.name,))
        p.desired, p.detached, p.expect_version = "running", False, None if p.crash else p.version
        p.replaced_job = None
        return f"start {db.name}.{p.name}"

    def step_stop(self):
        db, p = self.pick(self.pipes(lambda db, p: p.desired == "running"))
        with_savepoint = self.rng.random() < 0.5
        with pg_connect(db.name) as c, c.transaction():
            c.execute("SELECT flink.stop(%s, with_savepoint => %s)", (p.name, with_savepoint))
        p.desired, p.detached, p.expect_version = "stopped", False, None
        p.replaced_job = None
        if p.crash:
            self.settle_timeout = 90  # a savepoint of a restarting job fails; then it is cancelled
        return f"stop {db.name}.{p.name} (with_savepoint => {with_savepoint})"

    def step_restart(self):
        room = self.wanted() < self.MAX_WANTED
        db, p = self.pick(self.pipes(lambda db, p: not p.crash and (p.desired == "running" or room)))
        with pg_connect(db.name) as c, c.transaction():
            before = c.execute("SELECT flink_job_id FROM flink.pipeline_status WHERE pipeline = %s AND actual = 'RUNNING'",
                               (p.name,)).fetchone()
            c.execute("SELECT flink.restart(%s)", (p.name,))
        p.desired, p.detached, p.expect_version = "running", False, p.version
        p.replaced_job = before[0] if before else None
        return f"restart {db.name}.{p.name} (v{p.version})"

    def step_drop_pipeline(self):
        db, p = self.pick(self.pipes())
        with_savepoint = self.rng.random() < 0.3
        with pg_connect(db.name) as c, c.transaction():
            dropped = c.execute("SELECT flink.drop_pipeline(%s, with_savepoint => %s)", (p.name, with_savepoint)).fetchone()[0]
        assert dropped is True, f"drop_pipeline({p.name}) returned {dropped}"
        del db.pipelines[p.name]
        if p.desired == "running":
            db.pending_drops.add(p.name)
        if p.crash and with_savepoint:
            self.settle_timeout = 90
        return f"drop_pipeline {db.name}.{p.name} (with_savepoint => {with_savepoint}, was {p.desired})"

    def step_drop_cluster(self):
        db = self.pick([d for _, d in sorted(self.dbs.items())])
        users = sorted(p.name for p in db.pipelines.values() if p.desired == "running")
        with pg_connect(db.name) as c:
            if users and self.rng.random() < 0.5:
                try:
                    c.execute("SELECT flink.drop_cluster(%s)", (self.CLUSTER,))
                except psycopg.errors.DependentObjectsStillExist as e:
                    missing = [u for u in users if u not in str(e)]
                    assert not missing, f"drop_cluster refusal does not list {missing}: {e}"
                    return f"drop_cluster {db.name} (in use by {len(users)}: refused)"
                raise AssertionError(f"drop_cluster of a cluster used by running pipelines {users} was not refused")
            cascade = bool(users) or self.rng.random() < 0.3
            dropped = c.execute("SELECT flink.drop_cluster(%s, cascade => %s)", (self.CLUSTER, cascade)).fetchone()[0]
            assert dropped is True, f"drop_cluster returned {dropped}"
            for u in users:
                p = db.pipelines[u]
                p.desired, p.expect_version = "stopped", None
            prefix = database_prefix(c)
            wait_for(f"cluster {self.CLUSTER} of {db.name} gone and the jobs of {users} stopped",
                     lambda: (c.execute("SELECT count(*) FROM flink.clusters WHERE name = %s", (self.CLUSTER,)).fetchone()[0],
                              [j["name"] for u in users for j in live_jobs(prefix + u + "/v")]),
                     until=lambda v: v == (0, []), timeout=90)
            register(c, self.CLUSTER, self.DATASOURCE)
        return f"drop_cluster {db.name} (cascade => {cascade}, stopping {len(users)}) and register it again"

    def step_reinstall_extension(self):
        db = self.pick([d for _, d in sorted(self.dbs.items())])
        with pg_connect(db.name) as c:
            c.execute("DROP EXTENSION pg_flink CASCADE")
            c.execute("CREATE EXTENSION pg_flink")
            register(c, self.CLUSTER, self.DATASOURCE)
        n = len(db.pipelines)
        db.pipelines.clear()
        db.pending_drops.clear()
        return f"DROP EXTENSION pg_flink CASCADE; CREATE EXTENSION in {db.name} ({n} pipelines gone)"

    def step_new_database(self):
        name = self.new_db_name()
        self.ever.add(name)
        create_database(name)
        install(name, self.CLUSTER, self.DATASOURCE)
        self.dbs[name] = ScratchDb(name, {})
        return f"CREATE DATABASE {name}; CREATE EXTENSION pg_flink"

    def step_copy_database(self):
        src = self.pick([d for _, d in sorted(self.dbs.items())])
        name = self.new_db_name()
        self.ever.add(name)
        restore_copy(src.name, name)
        # The copy's pipelines that ran in the original are DETACHED: they want nothing.
        pipes = {n: dataclasses.replace(p, desired="stopped", detached=p.desired == "running", expect_version=None)
                 for n, p in src.pipelines.items()}
        self.dbs[name] = ScratchDb(name, pipes, copy_of=src.name)
        return f"pg_dump {src.name} | pg_restore into new {name} ({sum(p.detached for p in pipes.values())} detached)"

    def step_drop_database(self):
        db = self.pick([d for _, d in sorted(self.dbs.items())])
        drop_database(db.name, force=False, if_exists=False)
        del self.dbs[db.name]
        return f"DROP DATABASE {db.name} ({sum(p.desired == 'running' for p in db.pipelines.values())} running)"

    def step_crash_loop(self):
        db = self.pick([d for _, d in sorted(self.dbs.items())])
        name = self.new_name("crash")
        with pg_connect(db.name) as c:
            create_crash_looping_pipeline(c, name, self.DATASOURCE)
            with c.transaction():
                c.execute("SELECT flink.start(%s)", (name,))
        db.pipelines[name] = Pipe(name, 0, desired="running", crash=True)
        return f"create and start crash-looping {db.name}.{name}"

    def step_kill_postmaster(self):
        self.expect_disconnect = True
        kill_postmaster_and_restart()
        self.settle_timeout = 120
        return "kill -9 the postmaster; pg_ctl start"

    def step_restart_jobmanager(self):
        restart_jobmanager()
        for _, p in self.pipes():
            p.expect_version = None  # lost jobs are resubmitted with the current definition
        self.settle_timeout = 240
        return "JobManager restart (stack.sh stop/start flink): every job is lost"

    # -------------------------------------------------------------------- observation
    def read_database(self, name):
        """One consistent snapshot of a scratch database's control-plane state."""
        with pg_connect(name, autocommit=False) as c:
            c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with c.transaction():
                prefix = database_prefix(c)
                with c.cursor(row_factory=dict_row) as cur:
                    status = {r["pipeline"]: r for r in cur.execute(
                        "SELECT pipeline, desired, actual, flink_job_id, running_version, defined_version "
                        "FROM flink.pipeline_status")}
                    unrecorded = cur.execute(
                        "SELECT j.pipeline, j.id, j.state, e.to_state AS event_state FROM flink.jobs j "
                        "LEFT JOIN LATERAL (SELECT e.to_state FROM flink.job_events e WHERE e.job_id = j.id "
                        "                   ORDER BY e.id DESC LIMIT 1) e ON true "
                        "WHERE e.to_state IS DISTINCT FROM j.state").fetchall()
                    broken_chain = cur.execute(
                        "SELECT pipeline, job_id, id, from_state, prev_to FROM ("
                        "  SELECT e.*, lag(e.to_state) OVER w AS prev_to, row_number() OVER w AS n"
                        "  FROM flink.job_events e WINDOW w AS (PARTITION BY e.job_id ORDER BY e.id)) x "
                        "WHERE (n > 1 AND from_state IS DISTINCT FROM prev_to) OR (n = 1 AND from_state IS NOT NULL)").fetchall()
                    clusters = cur.execute("SELECT count(*) AS n FROM flink.clusters WHERE name = %s", (self.CLUSTER,)).fetchone()["n"]
                    drops = {}
                    if self.dbs[name].pending_drops:
                        drops = {r["pipeline"]: r for r in cur.execute(
                            "SELECT pipeline, stopped_at, flink_job_id FROM flink.dropped_pipelines WHERE pipeline = ANY(%s)",
                            (sorted(self.dbs[name].pending_drops),))}
        return {"prefix": prefix, "status": status, "unrecorded": unrecorded, "broken_chain": broken_chain,
                "cluster": clusters, "drops": drops}

    def problems(self):
        """Every invariant or model expectation that does not hold right now."""
        out = []
        jobs = flink_jobs()
        by_jid = {j["jid"]: j for j in jobs}
        snaps = {name: self.read_database(name) for name in sorted(self.dbs)}
        for name, db in sorted(self.dbs.items()):
            snap = snaps[name]
            status = snap["status"]
            for pname in sorted(set(db.pipelines) - set(status)):
                out.append(f"model: {name}.{pname} exists in the model but not in flink.pipeline_status")
            for pname, row in sorted(status.items()):
                p = db.pipelines.get(pname)
                where = f"{name}.{pname}"
                if p is None:
                    out.append(f"model: {where} is in flink.pipeline_status but was dropped or never created")
                    continue
                if row["desired"] != p.desired:
                    out.append(f"model: {where} desired is {row['desired']}, committed {p.desired}")
                live = live_jobs(snap["prefix"] + pname + "/v", jobs=jobs)
                if row["desired"] == "running":
                    if len(live) != 1:
                        out.append(f"(i) {where} wants to run and has {len(live)} live jobs with its identity: "
                                   f"{[(j['name'], j['state']) for j in live]} (slots available: {slots_available()})")
                        continue
                    if row["flink_job_id"] != live[0]["jid"]:
                        out.append(f"(iv) {where} tracks Flink job {row['flink_job_id']} but its live job is {live[0]['jid']}")
                        continue
                    flink_state = by_jid[live[0]["jid"]]["state"]
                    same = row["actual"] == flink_state or (p.crash and row["actual"] in LOOPING and flink_state in LOOPING)
                    if not same:
                        out.append(f"(iv) {where} actual is {row['actual']}, the JobManager says {flink_state}")
                    elif not p.crash and row["actual"] != "RUNNING":
                        why = root_exception(live[0]["jid"]) if flink_state != "RUNNING" else ""
                        out.append(f"settle: {where} wants to run, is {row['actual']}" + (f" (Flink: {why})" if why else ""))
                    if p.expect_version is not None and row["running_version"] != p.expect_version:
                        out.append(f"model: {where} runs v{row['running_version']}, started/restarted at v{p.expect_version}")
                    if p.replaced_job is not None and row["flink_job_id"] == p.replaced_job:
                        out.append(f"settle: {where} was restarted and still runs Flink job {p.replaced_job}")
                else:
                    if row["actual"] not in STOPPED_LIKE:
                        out.append(f"settle: {where} wants to be stopped, is {row['actual']}")
                    if p.detached and row["actual"] != "DETACHED":
                        out.append(f"model: {where} is a restored copy of a running pipeline of {db.copy_of}, "
                                   f"actual is {row['actual']}, not DETACHED")
            for r in snap["unrecorded"]:
                out.append(f"(iii) {name}.{r['pipeline']}: job {r['id']} is {r['state']}, its newest event says {r['event_state']}")
            for r in snap["broken_chain"]:
                out.append(f"(iii) {name}.{r['pipeline']}: event {r['id']} of job {r['job_id']} starts from {r['from_state']}, "
                           f"the previous one ended in {r['prev_to']} (an unrecorded change)")
            if snap["cluster"] != 1:
                out.append(f"model: cluster {self.CLUSTER} of {name} is missing from flink.clusters")
            for pname in sorted(db.pending_drops):
                d = snap["drops"].get(pname)
                if d is None or d["stopped_at"] is None:
                    out.append(f"drop: {name}.{pname} dropped while running, flink.dropped_pipelines says {d}")
        # (ii) live jobs of this instance naming the checker's databases must be wanted.
        for j in live_jobs(jobs=jobs):
            parsed = parse_job_name(j["name"])
            if parsed is None or parsed.system_identifier != self.sysid or parsed.database not in self.ever:
                continue
            db = self.dbs.get(parsed.database)
            if db is None:
                out.append(f"(ii) live job {j['jid']} {j['name']} ({j['state']}) names dropped database {parsed.database}")
                continue
            row = snaps[db.name]["status"].get(parsed.pipeline)
            if row is None:
                out.append(f"(ii) live job {j['jid']} {j['name']} ({j['state']}): no pipeline {parsed.pipeline} in {db.name}")
            elif row["desired"] != "running":
                out.append(f"(ii) live job {j['jid']} {j['name']} ({j['state']}): {db.name}.{parsed.pipeline} wants {row['desired']}")
        return out

    def settle(self, timeout):
        """Waits until every invariant holds (the worker has converged); fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.problems()
            except psycopg.Error as e:
                if not is_disconnect(e):
                    raise
                self.note_interruption(e)
                deadline = time.monotonic() + timeout
                continue
            if not found:
                # Settled pipelines' drop records are checked once.
                for db in self.dbs.values():
                    db.pending_drops.clear()
                return
            if time.monotonic() > deadline:
                raise InvariantViolation("not settled within %d s:\n  %s" % (timeout, "\n  ".join(found)))
            time.sleep(0.5)

    def note_interruption(self, error):
        """Postgres went away under us (someone restarted it): wait for it, carry on."""
        self.interruptions += 1
        self.history.append(f"    (Postgres connection lost: {str(error).strip()[:120]}; waiting for it)")
        self.log(f"[invariants] Postgres connection lost ({error!s:.80}); waiting")
        wait_for_postgres()

    def resync(self):
        """After an interrupted step, the model follows what the databases committed."""
        for name, db in list(self.dbs.items()):
            if not database_exists(name):
                del self.dbs[name]
                continue
            with pg_connect(name) as c:
                rows = c.execute("SELECT p.name, p.version, (p.params->'conditions'->0->>'value')::int, "
                                 "p.options ? 'flink', COALESCE(s.desired, 'stopped') "
                                 "FROM flink.pipelines p LEFT JOIN flink.pipeline_status s ON s.pipeline = p.name").fetchall()
            db.pipelines = {n: Pipe(n, t, v, d, crash) for n, v, t, crash, d in rows}
            db.pending_drops.clear()

    # -------------------------------------------------------------------- the run
    def setup(self):
        with pg_connect("postgres") as c:
            self.sysid = database_identity(c)[0]
        flink_jobs()  # the JobManager answers
        self.history.append(f"  0 {self.step_new_database()}")

    def cleanup(self):
        names = sorted(self.ever)
        for name in names:
            with contextlib.suppress(psycopg.Error):
                drop_database_surely(name)
        with contextlib.suppress(AssertionError, requests.RequestException):
            wait_for("jobs of the checker's databases cancelled after DROP DATABASE",
                     lambda: [j for n in names for j in jobs_naming_database(n, self.sysid)], until=lambda v: not v, timeout=30)
        with contextlib.suppress(requests.RequestException):
            cancel_jobs([j for n in names for j in jobs_naming_database(n, self.sysid)])

    def report(self, error, steps):
        lines = [f"lifecycle invariant violated: seed={self.seed}, step {self.step_no} of {steps}",
                 f"  {type(error).__name__}: {error}",
                 f"  replay: PG_FLINK_INVARIANT_SEED={self.seed} (pytest) or scripts/invariants-long.sh {self.seed} {steps}",
                 "  steps:"]
        lines += [f"    {h}" for h in self.history]
        if not self.history or not self.history[-1].lstrip().startswith(f"{self.step_no} "):
            lines.append(f"    {self.step_no:>3} {self.current} (failed while being carried out)")
        lines.append(f"  failed at step {self.step_no} ({self.current})")
        return "\n".join(lines)

    def run(self, steps, deadline_s):
        started = time.monotonic()
        counts = {}
        try:
            self.setup()
            self.settle(self.SETTLE_S)
            while self.step_no < steps and time.monotonic() - started < deadline_s:
                self.step_no += 1
                self.settle_timeout, self.expect_disconnect = self.SETTLE_S, False
                action = self.choose()
                self.current = action.__name__
                counts[action.__name__] = counts.get(action.__name__, 0) + 1
                t = time.monotonic()
                try:
                    desc = action()
                except psycopg.Error as e:
                    if not is_disconnect(e) or self.expect_disconnect:
                        raise
                    desc = f"{action.__name__} (interrupted)"
                    self.note_interruption(e)
                    self.resync()
                self.history.append(f"{self.step_no:>3} {desc}")
                self.settle(self.settle_timeout)
                self.log(f"[invariants] step {self.step_no}/{steps} {desc} (settled in {time.monotonic() - t:.1f} s)")
        except Exception as e:  # noqa: BLE001 - every failure is reported with the seed and the steps
            raise InvariantViolation(self.report(e, steps), self.seed, self.step_no) from e
        finally:
            if os.environ.get("PG_FLINK_INVARIANT_KEEP") != "1":
                self.cleanup()
        return {"seed": self.seed, "steps_run": self.step_no, "violations": 0, "interruptions": self.interruptions,
                "wall_s": round(time.monotonic() - started, 1), "steps": counts}


def run(seed, steps, deadline_s, log=print):
    """Runs `steps` seeded random steps (fewer if deadline_s passes first), checking the invariants
    after each; raises InvariantViolation (with the seed, the step and the history) on the first
    one that does not hold. Returns a summary dict."""
    return Checker(seed, log).run(steps, deadline_s)


def main(argv=None):
    ap = argparse.ArgumentParser(description="pg_flink lifecycle invariants over seeded random steps")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--deadline", type=float, default=4 * 3600, help="seconds")
    args = ap.parse_args(argv)
    # A SIGTERM (timeout, CI cancel) unwinds like an exception, so the scratch databases are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"seed: {args.seed}", flush=True)
    started = time.monotonic()
    checker = Checker(args.seed, log=lambda m: print(m, flush=True))

    def summary(steps_run, violations, extra=""):
        print(f"summary: seed={args.seed} steps_run={steps_run}/{args.steps} violations={violations} "
              f"interruptions={checker.interruptions} wall={time.monotonic() - started:.0f}s{extra}", flush=True)
    try:
        s = checker.run(args.steps, args.deadline)
    except InvariantViolation as e:
        print(e, flush=True)
        summary(e.step, 1)
        return 1
    except (SystemExit, KeyboardInterrupt):
        summary(checker.step_no, 0, " (interrupted)")
        raise
    summary(s["steps_run"], s["violations"], f" steps={json.dumps(s['steps'])}")
    return 0 if s["steps_run"] == args.steps else 2


if __name__ == "__main__":
    sys.exit(main())
