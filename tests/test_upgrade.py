"""Upgrades (issues #17, #16, docs/upgrades.md): a database created on a released schema (0.1.0, and
again 0.2.0), with
what a real user has (a cluster, datasources with secrets, pipelines with jobs running in the
real Flink, Kafka and Elasticsearch foreign tables, results tables, roles), is served by the
current library, then updated with ALTER EXTENSION pg_flink UPDATE while its jobs keep running.

Checked: on the old schema the worker says once that the database needs the update and stays
quiet; after the update every catalog row is still there, no job was resubmitted or duplicated
(pg_flink's job rows and Flink's /jobs/overview), the foreign and results tables answer, grants
survive, features of the new versions work with the worker (a manual savepoint, metrics), and the
upgraded schema equals a fresh install of the new version (a description of everything the
extension owns, built from the catalogs: DESCRIBE_SQL, also run by scripts/schema-diff.sh).

Runs on the stack's one Postgres with the current library installed together with the frozen
sql/pg_flink--0.1.0.sql and sql/pg_flink--0.2.0.sql (scripts/stack.sh installs them). At most two jobs run at a time.
"""
import contextlib
import difflib
import json
import pathlib
import re
import sys
import time
import types
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import psycopg  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from conftest import ENV  # noqa: E402
from lifecycle_invariants import (  # noqa: E402
    KAFKA, PG_LOG, cancel_jobs, create_database, create_filter_pipeline, database_prefix, drop_database_surely,
    filter_params, flink_jobs, holds_for, jobs_naming_database, live_jobs, make_topic, pg_connect, register, wait_for,
)
from test_es_fdw import bulk, make_index  # noqa: E402
from test_kafka_fdw import produce  # noqa: E402

# The released versions an upgrade starts from (sql/pg_flink--X.sql); each gets its own world.
RELEASED = ["0.1.0", "0.2.0"]
PHRASE = "ALTER EXTENSION pg_flink UPDATE"  # what the worker's message on an old schema says to run
ES = ENV["PG_FLINK_ES_URL"]
KAFKA_DS, ES_DS = "upg_kafka", "upg_es"
MESSAGES = 5  # per input topic, all pass the filter (n > 0)

# Catalog tables of 0.1.0 and the columns the worker keeps rewriting while a job runs.
CATALOG = ["cluster", "datasource", "datasource_secret", "pipeline", "pipeline_datasource", "pipeline_state",
           "job", "job_event", "savepoint", "pipeline_drop", "result_table"]
VOLATILE = {"job": {"updated_at", "flink_modified_ms", "details_checked_at", "last_checkpoint_at"}}


# ------------------------------------------------------------------------------------------------
# The schema description: one text line (or multi-line item) per fact about what the extension
# owns, without OIDs or the database name, so two databases compare as sorted lists.
# ------------------------------------------------------------------------------------------------
def _acl(expr):
    """An ACL as text with its items sorted (the order grants were made in does not matter)."""
    return f"(SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest({expr}) x)"


_REL_ACL = _acl("COALESCE(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))")

# Run with search_path = pg_catalog (describe()): every name outside pg_catalog comes qualified.
# Effective ACLs (acldefault for NULL) are compared, so "never granted" equals "granted back to
# the defaults". attoptions drops pg_attver=..., a per-database value this Postgres build keeps there.
DESCRIBE_SQL = f"""
WITH ext AS (
  SELECT e.oid AS extoid, e.* FROM pg_extension e WHERE e.extname = 'pg_flink'
), mem AS (
  SELECT d.classid, d.objid, d.objsubid FROM pg_depend d JOIN ext ON d.refobjid = ext.extoid
  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
), rel AS (
  SELECT c.oid AS reloid, c.* FROM pg_class c
  WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
     OR c.reltype IN (SELECT objid FROM mem WHERE classid = 'pg_type'::regclass) AND c.relkind = 'c'
)
SELECT format('extension %s version=%s relocatable=%s schema=%s owner=%s', extname, extversion, extrelocatable,
              extnamespace::regnamespace, pg_get_userbyid(extowner)) FROM ext
UNION ALL
SELECT format('extconfig %s condition=%L', u.cfg::regclass, u.cond)
FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(cfg, cond)
UNION ALL
SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM mem
UNION ALL
SELECT format('comment on %s: %s', pg_describe_object(m.classid, m.objid, 0), d.description)
FROM mem m JOIN pg_description d ON d.classoid = m.classid AND d.objoid = m.objid AND d.objsubid = 0
UNION ALL
SELECT format('initial privileges (%s) of %s: %s', i.privtype, pg_describe_object(i.classoid, i.objoid, i.objsubid),
              {_acl('i.initprivs')})
FROM pg_init_privs i JOIN mem m ON i.classoid = m.classid AND i.objoid = m.objid
UNION ALL
SELECT format('schema %I owner=%s acl=%s', n.nspname, pg_get_userbyid(n.nspowner),
              {_acl("COALESCE(n.nspacl, acldefault('n', n.nspowner))")})
FROM pg_namespace n JOIN mem m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
UNION ALL
SELECT format('default privileges in schema %s for role %s on %s: %s', a.defaclnamespace::regnamespace,
              pg_get_userbyid(a.defaclrole), a.defaclobjtype, {_acl('a.defaclacl')})
FROM pg_default_acl a JOIN mem m ON m.classid = 'pg_namespace'::regclass AND m.objid = a.defaclnamespace
UNION ALL
SELECT format('relation %s kind=%s persistence=%s owner=%s acl=%s options=%s rowsecurity=%s/%s replident=%s',
              c.reloid::regclass, c.relkind, c.relpersistence, pg_get_userbyid(c.relowner), {_REL_ACL},
              c.reloptions, c.relrowsecurity, c.relforcerowsecurity, c.relreplident)
FROM rel c
UNION ALL
SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned by %s',
              s.seqrelid::regclass, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, s.seqcycle,
              (SELECT string_agg(format('%s.%I', d.refobjid::regclass, a.attname), ', ' ORDER BY 1)
               FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.refclassid = 'pg_class'::regclass
                 AND d.deptype IN ('a', 'i')))
FROM pg_sequence s JOIN rel c ON c.reloid = s.seqrelid
UNION ALL
SELECT format('column %s #%s %I %s not_null=%s default=%L collation=%s identity=%L generated=%L acl=%s options=%s '
              'fdw_options=%s comment=%L',
              a.attrelid::regclass, row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum), a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
              (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                 JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation),
              a.attidentity, a.attgenerated, {_acl('a.attacl')},
              (SELECT array_agg(o ORDER BY o) FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\\_attver=%'),
              a.attfdwoptions, col_description(a.attrelid, a.attnum))
FROM pg_attribute a JOIN rel c ON c.reloid = a.attrelid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('constraint %I on %s: %s validated=%s comment=%L', co.conname,
              COALESCE(co.conrelid::regclass::text, co.contypid::regtype::text), pg_get_constraintdef(co.oid),
              co.convalidated, obj_description(co.oid, 'pg_constraint'))
FROM pg_constraint co
WHERE co.conrelid IN (SELECT reloid FROM rel)
   OR co.contypid IN (SELECT objid FROM mem WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT format('index %s clustered=%s replident=%s comment=%L', pg_get_indexdef(i.indexrelid), i.indisclustered,
              i.indisreplident, obj_description(i.indexrelid, 'pg_class'))
FROM pg_index i JOIN rel c ON c.reloid = i.indrelid
UNION ALL
SELECT format('trigger %s enabled=%s comment=%L', pg_get_triggerdef(t.oid), t.tgenabled,
              obj_description(t.oid, 'pg_trigger'))
FROM pg_trigger t JOIN rel c ON c.reloid = t.tgrelid
WHERE NOT t.tgisinternal
UNION ALL
SELECT format('view %s: %s', c.reloid::regclass, pg_get_viewdef(c.reloid))
FROM rel c WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT format('rule %s comment=%L', pg_get_ruledef(r.oid), obj_description(r.oid, 'pg_rewrite'))
FROM pg_rewrite r JOIN rel c ON c.reloid = r.ev_class
WHERE r.rulename <> '_RETURN'
UNION ALL
SELECT format('policy %I on %s command=%s permissive=%s roles=%s using=%L check=%L', p.polname, p.polrelid::regclass,
              p.polcmd, p.polpermissive,
              (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END, ',' ORDER BY 1)
               FROM unnest(p.polroles) r),
              pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM pg_policy p JOIN rel c ON c.reloid = p.polrelid
UNION ALL
SELECT format('function %s.%I(%s) kind=%s returns %s language=%s arguments=(%s) volatile=%s strict=%s '
              'security_definer=%s leakproof=%s parallel=%s cost=%s rows=%s config=%s owner=%s acl=%s probin=%L '
              'source=%L sql_body=%L',
              p.pronamespace::regnamespace, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
              pg_get_function_result(p.oid), l.lanname, pg_get_function_arguments(p.oid), p.provolatile,
              p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel, p.procost, p.prorows, p.proconfig,
              pg_get_userbyid(p.proowner), {_acl("COALESCE(p.proacl, acldefault('f', p.proowner))")}, p.probin,
              p.prosrc, CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) END)
FROM pg_proc p JOIN mem m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
JOIN pg_language l ON l.oid = p.prolang
UNION ALL
SELECT format('type %s type=%s category=%s owner=%s acl=%s base=%s not_null=%s default=%L labels=%s',
              t.oid::regtype, t.typtype, t.typcategory, pg_get_userbyid(t.typowner),
              {_acl("COALESCE(t.typacl, acldefault('T', t.typowner))")},
              CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, t.typnotnull, t.typdefault,
              (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
FROM pg_type t JOIN mem m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
UNION ALL
SELECT format('foreign-data wrapper %I handler=%s validator=%s owner=%s acl=%s options=%s', w.fdwname,
              w.fdwhandler::regproc, w.fdwvalidator::regproc, pg_get_userbyid(w.fdwowner),
              {_acl("COALESCE(w.fdwacl, acldefault('F', w.fdwowner))")}, w.fdwoptions)
FROM pg_foreign_data_wrapper w JOIN mem m ON m.classid = 'pg_foreign_data_wrapper'::regclass AND m.objid = w.oid
UNION ALL
SELECT format('server %I wrapper=%s type=%L version=%L owner=%s acl=%s options=%s', s.srvname,
              (SELECT w.fdwname FROM pg_foreign_data_wrapper w WHERE w.oid = s.srvfdw), s.srvtype, s.srvversion,
              pg_get_userbyid(s.srvowner), {_acl("COALESCE(s.srvacl, acldefault('S', s.srvowner))")}, s.srvoptions)
FROM pg_foreign_server s JOIN mem m ON m.classid = 'pg_foreign_server'::regclass AND m.objid = s.oid
UNION ALL
SELECT format('event trigger %I on %s function=%s enabled=%s tags=%s owner=%s', e.evtname, e.evtevent,
              e.evtfoid::regproc, e.evtenabled, e.evttags, pg_get_userbyid(e.evtowner))
FROM pg_event_trigger e JOIN mem m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
"""

# Roles are cluster-wide (sql/install/10_roles.sql): checked once, not per database.
ROLES_SQL = """
SELECT r.rolname, r.rolcanlogin, r.rolsuper,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1) AS member_of
FROM pg_roles r WHERE r.rolname IN ('flink_admin', 'flink_reader') ORDER BY 1
"""


def describe(c):
    """The sorted description of everything the pg_flink extension owns in c's database."""
    with c.transaction():
        c.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        return sorted(r[0] for r in c.execute(DESCRIBE_SQL))


def schema_diff(a, b, name_a="a", name_b="b"):
    """Unified diff of two descriptions ('' when equal)."""
    lines_a = "\n".join(a).splitlines()
    lines_b = "\n".join(b).splitlines()
    return "\n".join(difflib.unified_diff(lines_a, lines_b, name_a, name_b, lineterm="", n=1))


# ------------------------------------------------------------------------------------------------
# The server log
# ------------------------------------------------------------------------------------------------
class LogTail:
    """The lines Postgres logs from now on (the stack logs to one file, see conftest ENV)."""

    def __init__(self, path=PG_LOG):
        self.path = pathlib.Path(path)
        self.start = self.mark()

    def mark(self):
        return self.path.stat().st_size

    def lines(self, since=None):
        since = self.start if since is None else since
        with open(self.path, "rb") as f:
            if f.seek(0, 2) < since:  # rotated or truncated: everything is new
                since = 0
            f.seek(since)
            return f.read().decode("utf-8", "replace").splitlines()


def pid_of(line):
    m = re.search(r" \[(\d+)\] ", line)
    return int(m.group(1)) if m else None


def is_session_line(line, db):
    """A line of a client session (prefix %u@%d); background workers log without it."""
    return re.search(r" \[\d+\] \S*@" + re.escape(db) + " ", line) is not None


def worker_pids(c, db, lines):
    """Pids of the database's pg_flink worker: running now, or that logged their start."""
    pids = {r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_flink worker'"
                                    " AND datname = %s", (db,))}
    pids |= {pid_of(l) for l in lines if f'pg_flink worker started for database "{db}"' in l}
    return pids - {None}


def old_schema_lines(lines, db, pids):
    """Lines saying the database should be updated: from its worker, or naming it (not a session's)."""
    return [l for l in lines if PHRASE in l and not is_session_line(l, db) and (pid_of(l) in pids or db in l)]


def poll_interval_s(c):
    return int(c.execute("SELECT setting FROM pg_settings WHERE name = 'pg_flink.poll_interval_ms'").fetchone()[0]) / 1000


# ------------------------------------------------------------------------------------------------
# Snapshots
# ------------------------------------------------------------------------------------------------
def catalog_columns(c):
    """The columns of the 0.1.0 catalog tables (compared before and after; new columns are not)."""
    cols = {}
    for t in CATALOG:
        names = [r[0] for r in c.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                                         " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (f"flink.{t}",))]
        cols[t] = [n for n in names if n not in VOLATILE.get(t, ())]
    return cols


def catalog_rows(c, columns):
    rows = {}
    for t, cols in columns.items():
        # Secrets are compared by hash and never printed.
        sel = ", ".join("md5(secrets::text) AS secrets_md5" if (t, n) == ("datasource_secret", "secrets")
                        else f'"{n}"' for n in cols)
        with c.cursor(row_factory=dict_row) as cur:
            rows[t] = cur.execute(f"SELECT {sel} FROM flink.{t} ORDER BY 1, 2").fetchall()
    return rows


def jobs_in_flink(prefix):
    """Every job (live or ended) the JobManager knows under the database's prefix: {jid: (name, state)}."""
    return {j["jid"]: (j["name"], j["state"]) for j in flink_jobs() if j["name"].startswith(prefix)}


def foreign_tables(c):
    """Definitions of the user's foreign tables: wrapper, server and its options, table and column options."""
    return c.execute("""
        SELECT ft.ftrelid::regclass::text, w.fdwname, s.srvname, s.srvoptions, ft.ftoptions,
               ARRAY(SELECT format('%s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), a.attfdwoptions)
                     FROM pg_attribute a WHERE a.attrelid = ft.ftrelid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum)
        FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
        JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw ORDER BY 1""").fetchall()


def counts(c, tables):
    return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def privileges(c, w):
    """Role memberships and privileges a user set up (and the extension's own grants), as booleans."""
    return c.execute("""
        SELECT pg_has_role(%(admin)s, 'flink_admin', 'MEMBER'), pg_has_role(%(reader)s, 'flink_reader', 'MEMBER'),
               pg_has_role(%(reader)s, 'flink_admin', 'MEMBER'),
               has_function_privilege(%(admin)s, 'flink.start(text, text)', 'EXECUTE'),
               has_function_privilege(%(reader)s, 'flink.start(text, text)', 'EXECUTE'),
               has_table_privilege(%(reader)s, 'flink.pipeline_status', 'SELECT'),
               has_table_privilege(%(reader)s, 'flink.datasource_secret', 'SELECT'),
               has_table_privilege(%(admin)s, 'flink.datasource_secret', 'SELECT'),
               has_table_privilege(%(reader)s, %(results)s, 'SELECT'),
               has_server_privilege(%(reader)s, %(server)s, 'USAGE')""",
                     {"admin": w.admin_role, "reader": w.reader_role, "results": w.results[0],
                      "server": w.kafka_server}).fetchone()


def snapshot(c, w):
    return types.SimpleNamespace(
        catalog=catalog_rows(c, w.columns),
        flink=jobs_in_flink(w.prefix),
        foreign_tables=foreign_tables(c),
        counts=counts(c, w.results + w.fdw_tables),
        privileges=privileges(c, w),
        submitting=c.execute("SELECT count(*) FROM flink.job_event WHERE to_state = 'SUBMITTING'").fetchone()[0],
    )


def live_of(w, pipeline):
    return [j for j in live_jobs(w.prefix) if j["name"].startswith(f"{w.prefix}{pipeline}/v")]


def wait_count(c, table, want, timeout=120):
    def probe():
        try:
            return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except psycopg.Error as e:  # the sink's topic or index appears with the first result
            return repr(e)
    return wait_for(f"{want} rows in {table}", probe, until=lambda n: isinstance(n, int) and n >= want,
                    timeout=timeout, interval=1)


# ------------------------------------------------------------------------------------------------
# The database on 0.1.0, and its update
# ------------------------------------------------------------------------------------------------
def build_old_database(c, w):
    """What a real user has, through the 0.1.0 API."""
    c.execute(f"CREATE EXTENSION pg_flink VERSION '{w.old}'")
    assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_flink'").fetchone()[0] == w.old
    w.prefix = database_prefix(c)

    register(c, "local", KAFKA_DS)  # the stack's Flink cluster and Kafka
    c.execute("SELECT * FROM flink.register_datasource(%s, 'elasticsearch', %s)", (ES_DS, json.dumps({"url": ES})))
    secret = uuid.uuid4().hex  # never printed: compared by hash
    c.execute("SELECT * FROM flink.register_datasource('upg_pg', 'postgres', %s, %s)",
              (json.dumps({"host": "127.0.0.1", "port": int(ENV["PGPORT"]), "database": w.db}),
               json.dumps({"password": secret})))
    c.execute("SELECT * FROM flink.register_datasource('upg_es_auth', 'elasticsearch', %s, %s)",
              (json.dumps({"url": ES, "username": "upg"}), json.dumps({"password": secret})))
    c.execute("SELECT * FROM flink.register_datasource('upg_kafka_sasl', 'kafka', %s, %s)",
              (json.dumps({"bootstrap_servers": KAFKA, "security_protocol": "SASL_PLAINTEXT",
                           "sasl_mechanism": "PLAIN", "sasl_username": "upg"}), json.dumps({"sasl_password": secret})))

    # A: Kafka -> Kafka; B: Kafka -> Elasticsearch; C: defined, never started.
    one_slot = {"parallelism": 1}
    a, b, idle = w.pipelines = [f"{w.tag}_a", f"{w.tag}_b", f"{w.tag}_idle"]
    create_filter_pipeline(c, a, KAFKA_DS, options=one_slot)  # makes topic a_in with {"n": 1}
    make_topic(f"{b}_in")
    params = filter_params(KAFKA_DS, f"{b}_in", None)
    params["sink"] = {"datasource": ES_DS, "object": f"{b}_alerts"}
    c.execute("SELECT * FROM flink.create_pipeline(%s, 'filter_alert', %s, %s)", (b, json.dumps(params), json.dumps(one_slot)))
    create_filter_pipeline(c, idle, KAFKA_DS, options=one_slot)
    w.topics = [f"{a}_in", f"{a}_out", f"{b}_in", f"{idle}_in"]
    w.indexes = [f"{b}_alerts"]
    for p in (a, b):
        produce(f"{p}_in", [dict(value=json.dumps({"n": n}).encode()) for n in range(2, MESSAGES + 1)])
    w.results = [c.execute("SELECT flink.expose_results(%s)::text", (a,)).fetchone()[0],
                 c.execute("SELECT flink.expose_results(%s, 'upg_results', true)::text", (b,)).fetchone()[0]]
    w.results.append(w.results[1] + "_v")

    # Jobs: B runs, stops with a savepoint and resumes from it (two job rows, a savepoint); A runs.
    c.execute("SELECT flink.start(%s), flink.start(%s)", (a, b))
    for p in (a, b):
        assert c.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (p,)).fetchone()[0] == "RUNNING"
    wait_count(c, w.results[1], MESSAGES)
    c.execute("SELECT flink.stop(%s)", (b,))
    assert c.execute("SELECT flink.wait(%s, 'stopped', '120 seconds')", (b,)).fetchone()[0] == "STOPPED"
    assert c.execute("SELECT count(*) FROM flink.savepoints WHERE pipeline = %s AND trigger = 'stop'", (b,)).fetchone()[0] == 1
    c.execute("SELECT flink.start(%s, from_savepoint => 'latest')", (b,))
    assert c.execute("SELECT flink.wait(%s, 'running', '120 seconds')", (b,)).fetchone()[0] == "RUNNING"
    wait_count(c, w.results[0], MESSAGES)

    # Foreign tables of the user's own, through servers naming catalog datasources.
    w.kafka_server = f"{w.tag}_kafka"
    c.execute(f"CREATE SERVER {w.kafka_server} FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (datasource '{KAFKA_DS}')")
    c.execute(f"CREATE FOREIGN TABLE public.{w.tag}_kt (_partition int, _offset bigint, n bigint, _error text)"
              f" SERVER {w.kafka_server} OPTIONS (topic '{a}_in')")
    index = f"{w.tag}_docs"
    w.indexes.append(index)
    make_index(index, {"properties": {"n": {"type": "long"}, "city": {"type": "keyword"}}})
    bulk(index, [(str(i), {"n": i, "city": ["Oslo", "Bergen"][i % 2]}) for i in range(7)])
    c.execute(f"CREATE SERVER {w.tag}_es FOREIGN DATA WRAPPER pg_flink_elasticsearch OPTIONS (datasource '{ES_DS}')")
    c.execute(f"CREATE FOREIGN TABLE public.{w.tag}_et (_id text, n bigint, city text) SERVER {w.tag}_es"
              f" OPTIONS (index '{index}')")
    w.fdw_tables = [f"public.{w.tag}_kt", f"public.{w.tag}_et"]

    # Roles of the user's: an admin and a reader with access to a results table and a server.
    w.admin_role, w.reader_role = f"{w.tag}_admin", f"{w.tag}_reader"
    c.execute(f"CREATE ROLE {w.admin_role}; CREATE ROLE {w.reader_role}")
    w.roles = [w.admin_role, w.reader_role]
    c.execute(f"GRANT flink_admin TO {w.admin_role}; GRANT flink_reader TO {w.reader_role}")
    c.execute(f"GRANT USAGE ON SCHEMA flink_results TO {w.reader_role};"
              f" GRANT SELECT ON {w.results[0]} TO {w.reader_role};"
              f" GRANT USAGE ON FOREIGN SERVER {w.kafka_server} TO {w.reader_role}")


def settle(c, w):
    """The results tables no longer change (late sink writes) for a few seconds."""
    first = counts(c, w.results)
    holds_for(f"results tables stay at {first}", lambda: counts(c, w.results), must=lambda v: v == first, duration=3)


@pytest.fixture(scope="module", params=RELEASED)
def world(request):
    """A database on a released version with a user's things; 'before' recorded, updated, 'after' recorded."""
    w = types.SimpleNamespace(tag=f"upg_{uuid.uuid4().hex[:10]}", pipelines=[], topics=[], indexes=[], roles=[],
                              old=request.param)
    w.db = f"pgflink_{w.tag}"
    w.fresh_db = f"pgflink_fresh_{w.tag}"
    w.prefix = None
    w.log = LogTail()
    create_database(w.db)
    try:
        with pg_connect(w.db) as c:
            w.poll = poll_interval_s(c)
            build_old_database(c, w)
            w.columns = catalog_columns(c)
            settle(c, w)
            w.before = snapshot(c, w)
            # The worker on the old schema over a quiet stretch of five poll intervals (or more).
            quiet_from = w.log.mark()
            time.sleep(max(5 * w.poll, 3))
            w.pids_old = worker_pids(c, w.db, w.log.lines())
            w.quiet_lines = [l for l in w.log.lines(quiet_from) if pid_of(l) in w.pids_old]
            w.old_lines = old_schema_lines(w.log.lines(), w.db, w.pids_old)
            assert jobs_in_flink(w.prefix) == w.before.flink, "jobs changed before the update"

            w.default_version = c.execute("SELECT default_version FROM pg_available_extensions"
                                          " WHERE name = 'pg_flink'").fetchone()[0]
            assert w.default_version != w.old, f"the installed default version is still {w.old}: install the new one first"
            w.update_from = w.log.mark()
            c.execute("SET lock_timeout = '30s'")  # an ALTER stuck behind the worker fails, naming the lock
            t = time.monotonic()
            c.execute("ALTER EXTENSION pg_flink UPDATE")
            w.update_s = time.monotonic() - t
            c.execute("RESET lock_timeout")
            w.version = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_flink'").fetchone()[0]

            # Ten poll intervals (at least 5 s) under the new schema: Flink's jobs stay exactly as they were.
            holds_for("Flink's jobs of the database stay as before the update", lambda: jobs_in_flink(w.prefix),
                      must=lambda v: v == w.before.flink, duration=max(10 * w.poll, 5))
            w.after = snapshot(c, w)
        yield w
    finally:
        teardown(w)


def teardown(w):
    def attempt(what, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - cleanup goes on; the failure is shown
            print(f"cleanup: {what}: {e!r}")

    def stop_all():
        with pg_connect(w.db) as c:
            for p in w.pipelines:
                c.execute("SELECT flink.stop(%s, with_savepoint => false)", (p,))
        wait_for("the database's Flink jobs end", lambda: live_jobs(w.prefix), until=lambda v: v == [], timeout=60)

    if w.prefix:
        attempt("stop the pipelines", stop_all)
        attempt("cancel what is left", lambda: cancel_jobs(live_jobs(w.prefix)))
    for db in (w.db, w.fresh_db):
        attempt(f"drop {db}", lambda db=db: drop_database_surely(db))
        attempt(f"cancel jobs of {db}", lambda db=db: cancel_jobs(jobs_naming_database(db)))
    def drop_role(role):
        with pg_connect("postgres") as c:
            c.execute(f"DROP ROLE IF EXISTS {role}")
    for role in w.roles:
        attempt(f"drop role {role}", lambda role=role: drop_role(role))
    for index in w.indexes:
        attempt(f"delete index {index}", lambda index=index: requests.delete(f"{ES}/{index}", timeout=30))
    def delete_topics():
        admin = AdminClient({"bootstrap.servers": KAFKA})  # kept alive until every future is done
        for f in admin.delete_topics(w.topics, operation_timeout=30).values():
            f.result()
    if w.topics:
        attempt("delete topics", delete_topics)


# ------------------------------------------------------------------------------------------------
# Tests (file order: the manual savepoint changes the catalog, so it comes after the comparisons)
# ------------------------------------------------------------------------------------------------
def test_the_old_database_had_running_jobs_savepoints_and_results(world):
    b = world.before
    states = {r["pipeline"]: r["state"] for r in b.catalog["job"]}  # the last job row of each (ordered by id)
    assert states == {world.pipelines[0]: "RUNNING", world.pipelines[1]: "RUNNING"}, b.catalog["job"]
    assert len(b.catalog["job"]) == 3 and len(b.catalog["savepoint"]) == 1
    assert all(n >= MESSAGES for t, n in b.counts.items() if t in world.results), b.counts
    assert b.counts[world.fdw_tables[0]] == MESSAGES and b.counts[world.fdw_tables[1]] == 7, b.counts
    live = {p: [j["jid"] for j in live_of(world, p)] for p in world.pipelines}
    assert [len(v) for v in live.values()] == [1, 1, 0], live


def test_on_the_old_schema_the_worker_says_once_to_update_and_stays_quiet(world):
    assert world.pids_old, f"no pg_flink worker seen for database {world.db}"
    assert 1 <= len(world.old_lines) <= 2, (
        f"lines asking for {PHRASE!r} for {world.db} (want one): " + "\n".join(world.old_lines[:20]))
    assert len(world.quiet_lines) <= 1, (
        f"the worker logged over {max(5 * world.poll, 3):.1f} quiet seconds on the old schema:\n"
        + "\n".join(world.quiet_lines[:20]))


def test_update_goes_to_the_default_version(world):
    assert world.version == world.default_version != world.old
    assert world.update_s < 30, f"ALTER EXTENSION took {world.update_s:.1f} s"


def test_every_catalog_row_survives(world):
    for t in CATALOG:
        assert world.after.catalog[t] == world.before.catalog[t], f"flink.{t} changed across the update"
    assert world.after.submitting == world.before.submitting, "a job was submitted again"


def test_no_job_is_resubmitted_or_duplicated(world):
    assert world.after.flink == world.before.flink, "Flink's jobs of the database changed across the update"
    with pg_connect(world.db) as c:
        rows = c.execute("SELECT id, pipeline, flink_job_id, state FROM flink.job ORDER BY id").fetchall()
        before = [(r["id"], r["pipeline"], r["flink_job_id"], r["state"]) for r in world.before.catalog["job"]]
        assert rows == before
        for p in world.pipelines[:2]:
            jid = c.execute("SELECT flink_job_id FROM flink.job WHERE pipeline = %s ORDER BY id DESC LIMIT 1", (p,)).fetchone()[0]
            assert [j["jid"] for j in live_of(world, p)] == [jid], f"{p}: one live Flink job, the one recorded"
        assert live_of(world, world.pipelines[2]) == []
        status = c.execute("SELECT pipeline, desired, actual, healthy FROM flink.pipeline_status ORDER BY 1").fetchall()
        assert status == [(world.pipelines[0], "running", "RUNNING", True), (world.pipelines[1], "running", "RUNNING", True),
                          (world.pipelines[2], "stopped", None, True)]


def test_foreign_and_results_tables_still_answer(world):
    assert world.after.foreign_tables == world.before.foreign_tables
    assert world.after.counts == world.before.counts


def test_roles_and_grants_survive(world):
    assert world.before.privileges == (True, True, False, True, False, True, False, True, True, True)
    assert world.after.privileges == world.before.privileges
    with pg_connect(world.db) as c:
        c.execute(f"SET ROLE {world.reader_role}")
        assert len(c.execute("SELECT * FROM flink.pipeline_status").fetchall()) == 3


def test_the_upgraded_schema_equals_a_fresh_install(world):
    create_database(world.fresh_db)
    with pg_connect(world.fresh_db) as fresh, pg_connect(world.db) as upgraded:
        fresh.execute("CREATE EXTENSION pg_flink")
        assert fresh.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_flink'").fetchone()[0] == world.version
        a, b = describe(upgraded), describe(fresh)
        assert any(l.startswith("function flink.savepoint(") for l in b)  # the description sees 0.2.0's objects
        diff = schema_diff(a, b, f"upgraded from {world.old} ({world.db})", f"fresh {world.version} ({world.fresh_db})")
        assert not diff, "the upgraded schema differs from a fresh install:\n" + diff
        roles = upgraded.execute(ROLES_SQL).fetchall()
        assert roles == [("flink_admin", False, False, ["flink_reader"]), ("flink_reader", False, False, [])]


def test_after_the_update_the_worker_is_quiet(world):
    with pg_connect(world.db) as c:
        lines = world.log.lines(world.update_from)
        pids = world.pids_old | worker_pids(c, world.db, lines)
    again = old_schema_lines(lines, world.db, pids)
    assert again == [], f"still asked for {PHRASE!r} after the update:\n" + "\n".join(again[:20])
    noisy = [l for l in world.log.lines() if pid_of(l) in pids and re.search(r" (WARNING|ERROR|FATAL|PANIC): ", l)]
    assert noisy == [], "the database's worker complained:\n" + "\n".join(noisy[:20])


def test_metrics_are_sampled_on_the_upgraded_database(world):
    """0.3.0: the worker samples the running jobs once the schema has its metrics tables."""
    with pg_connect(world.db) as c:
        running = {r[0] for r in c.execute("SELECT pipeline FROM flink.pipeline_status WHERE actual = 'RUNNING'").fetchall()}
        assert running, "no running pipeline to sample"
        got = wait_for("every running pipeline in flink.pipeline_metrics (seen: sampled pipelines)",
                       lambda: {r[0] for r in c.execute("SELECT pipeline FROM flink.pipeline_metrics").fetchall()},
                       until=lambda v: running <= v, timeout=60, interval=1)
        assert running <= got


def test_a_new_feature_works_on_the_upgraded_database(world):
    """flink.savepoint (0.2.0), called by a flink_admin member: the worker takes it, the job runs on."""
    a = world.pipelines[0]
    with pg_connect(world.db) as c:
        job_id, jid = c.execute("SELECT id, flink_job_id FROM flink.job WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                                (a,)).fetchone()
        c.execute(f"SET ROLE {world.admin_role}")
        assert c.execute("SELECT flink.savepoint(%s)", (a,)).fetchone()[0] == "requested"
        c.execute("RESET ROLE")

        def probe():
            return (c.execute("SELECT path, job_id FROM flink.savepoints WHERE pipeline = %s AND trigger = 'manual'",
                              (a,)).fetchall(),
                    c.execute("SELECT ps.savepoint_requested_at, j.savepoint_trigger, j.state, j.last_error"
                              " FROM flink.pipeline_state ps JOIN flink.job j ON j.id = %s WHERE ps.pipeline = %s",
                              (job_id, a)).fetchone(),
                    c.execute("SELECT detail FROM flink.job_events WHERE pipeline = %s ORDER BY id DESC LIMIT 1",
                              (a,)).fetchone())
        got = wait_for(f"a manual savepoint of {a} in flink.savepoints (seen: savepoints, (requested_at, trigger,"
                       " job state, last_error), last event)", probe, until=lambda v: v[0], timeout=60, interval=0.5)
        (path, sp_job), = got[0]
        assert sp_job == job_id and path
        assert got[1][2] == "RUNNING"
        assert [j["jid"] for j in live_of(world, a)] == [jid], "the job runs on"
        assert c.execute("SELECT count(*) FROM flink.job_events WHERE pipeline = %s AND detail LIKE 'manual savepoint taken%%'",
                         (a,)).fetchone()[0] == 1


# ------------------------------------------------------------------------------------------------
# scripts/schema-diff.sh DB1 DB2: the same description compared between any two databases.
# ------------------------------------------------------------------------------------------------
def main(argv):
    if len(argv) != 2:
        print("usage: schema-diff.sh DB1 DB2  (compares what the pg_flink extension owns in both)", file=sys.stderr)
        return 2
    descriptions = []
    for db in argv:
        with contextlib.closing(pg_connect(db)) as c:
            descriptions.append(describe(c))
    diff = schema_diff(*descriptions, *argv)
    if diff:
        print(diff)
        return 1
    print(f"no difference ({len(descriptions[0])} items)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
