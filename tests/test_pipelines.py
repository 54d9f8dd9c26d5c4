"""Pipelines: stored rules rendered into Flink SQL and validated by the real SQL Gateway."""
import json
import pathlib
import uuid

import psycopg
import pytest

from conftest import ENV, connect, unique

EXAMPLES = json.loads((pathlib.Path(__file__).parent / "pipelines" / "examples.json").read_text())


@pytest.fixture(scope="module")
def pdb():
    name = f"pgflink_pipe_{uuid.uuid4().hex[:8]}"
    with connect("postgres") as c:
        c.execute(f'CREATE DATABASE "{name}"')
    with connect(name) as c:
        c.execute("CREATE EXTENSION pg_flink")
        c.execute("SELECT * FROM flink.register_cluster('local', %s, %s)",
                  (ENV["PG_FLINK_GATEWAY_URL"], ENV["PG_FLINK_REST_URL"]))
        for ds, d in EXAMPLES["catalog"].items():
            c.execute("SELECT * FROM flink.register_datasource(%s, %s, %s, %s)",
                      (ds, d["kind"], json.dumps(d["options"]), json.dumps(d.get("secrets")) if d.get("secrets") else None))
    yield name
    with connect("postgres") as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(pdb):
    with connect(pdb) as c:
        yield c


def create(c, p, name=None):
    return c.execute("SELECT * FROM flink.create_pipeline(%s, %s, %s, %s)",
                     (name or p["name"], p["template"], json.dumps(p["params"]), json.dumps(p["options"]))).fetchone()


def example(name):
    return json.loads(json.dumps(next(p for p in EXAMPLES["pipelines"] if p["name"] == name)))


def pipeline_rows(c):
    return c.execute("SELECT name, template, params, options, version, script_hash FROM flink.pipeline ORDER BY name").fetchall()


@pytest.mark.parametrize("p", EXAMPLES["pipelines"], ids=[p["name"] for p in EXAMPLES["pipelines"]])
def test_every_documented_example_validates_on_the_real_gateway(db, p):
    assert create(db, p) == (p["name"], 1, True)
    ok, detail, param = db.execute("SELECT * FROM flink.validate(%s)", (p["name"],)).fetchone()
    assert ok, f"{p['name']}: {detail} (parameter {param})"
    assert "== Optimized Execution Plan ==" in detail
    # The stored script is the golden one (same renderer, database name aside).
    script = db.execute("SELECT flink.render(%s)", (p["name"],)).fetchone()[0]
    golden = (pathlib.Path(__file__).parent / "golden" / f"{p['name']}.sql").read_text()
    here = db.execute("SELECT format('pg_flink/%s/%s/%s/', s.system_identifier, d.oid, d.datname) "
                      "FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()").fetchone()[0]
    assert script == golden.replace("pg_flink/7300000000000000001/16384/pg_flink_test/", here)


def test_identical_create_is_a_no_op_and_a_change_bumps_the_version(db):
    p = example("big_orders")
    create(db, p, "idem")
    before = pipeline_rows(db)
    assert create(db, p, "idem") == ("idem", 1, False)
    assert pipeline_rows(db) == before
    h1 = db.execute("SELECT script_hash FROM flink.pipelines WHERE name='idem'").fetchone()[0]
    p["params"]["conditions"][0]["value"] = 5000
    assert create(db, p, "idem") == ("idem", 2, True)
    h2 = db.execute("SELECT script_hash FROM flink.pipelines WHERE name='idem'").fetchone()[0]
    assert h1 != h2
    # Deterministic rendering: same definition, byte-identical script.
    r1 = db.execute("SELECT flink.render('idem')").fetchone()[0]
    r2 = db.execute("SELECT flink.render('idem')").fetchone()[0]
    assert r1 == r2 and "'pipeline.name' = 'pg_flink/" in r1 and "/idem/v2'" in r1
    assert db.execute("SELECT flink.drop_pipeline('idem')").fetchone()[0] is True


def test_columns_are_read_from_the_datasource_when_not_declared(db):
    table = unique("pipe_src")
    with connect("pg_flink_test") as src:
        src.execute(f"CREATE TABLE public.{table} (id bigint PRIMARY KEY, name varchar(40), amount numeric(12,2), at timestamptz)")
    try:
        params = {"source": {"datasource": "pg_local", "object": table},
                  "sink": {"datasource": "es_local", "object": table, "primary_key": ["id"]}}
        assert create(db, {"template": "sync", "params": params, "options": {}}, "described")[2] is True
        stored = db.execute("SELECT params->'source'->'columns' FROM flink.pipelines WHERE name='described'").fetchone()[0]
        assert stored == [{"name": "id", "type": "BIGINT"}, {"name": "name", "type": "VARCHAR(40)"},
                          {"name": "amount", "type": "DECIMAL(12, 2)"}, {"name": "at", "type": "TIMESTAMP(6)"}]
        ok, detail, _ = db.execute("SELECT * FROM flink.validate('described')").fetchone()
        assert ok, detail
    finally:
        db.execute("SELECT flink.drop_pipeline('described', if_exists => true)")
        with connect("pg_flink_test") as src:
            src.execute(f"DROP TABLE public.{table}")


def test_flink_rejects_a_broken_raw_sql_pipeline_with_its_message(db):
    p = example("raw_top_cities")
    p["params"]["sql"] = "INSERT INTO {{kafka_local.city_totals}} SELECT city, SUM(nope) AS total FROM {{kafka_local.orders}} GROUP BY city"
    create(db, p, "broken_sql")
    ok, detail, param = db.execute("SELECT * FROM flink.validate('broken_sql')").fetchone()
    assert ok is False
    assert "Column 'nope' not found in any table" in detail
    p["params"]["sql"] = "INSERT INTO {{kafka_local.city_totals}} SELECT city, city AS total FROM {{kafka_local.orders}}"
    create(db, p, "broken_sql")
    ok, detail, param = db.execute("SELECT * FROM flink.validate('broken_sql')").fetchone()
    assert ok is False
    assert "Incompatible types for sink column 'total'" in detail
    assert param == "params.tables.kafka_local.city_totals.columns[1].name"
    db.execute("SELECT flink.drop_pipeline('broken_sql')")


def test_type_mismatch_is_caught_before_anything_is_stored(db):
    p = example("revenue_cumulate")
    p["params"]["sink"]["columns"][2]["type"] = "INT"
    before = pipeline_rows(db)
    with pytest.raises(psycopg.errors.DatatypeMismatch) as e:
        create(db, p, "mismatch")
    assert 'query column "revenue" is DECIMAL(38, 2) but sink column "revenue" is INT' in str(e.value)
    assert e.value.diag.message_hint
    p = example("orders_with_payments")
    p["params"]["right"]["columns"][0]["type"] = "STRING"
    with pytest.raises(psycopg.errors.DatatypeMismatch) as e:
        create(db, p, "mismatch")
    assert "params.on[0]: join keys do not have comparable types" in str(e.value)
    assert pipeline_rows(db) == before


BAD = [
    ("window_aggregate", None, "22004", "params must not be null"),
    ("window_aggregate", [], "22023", "params: must be a JSON object"),
    ("window_aggregate", {}, "22023", "params: missing field `source`"),
    ("windowaggregate", {}, "22023", 'unknown template "windowaggregate"'),
    ("filter_alert", {"source": {"datasource": "nope", "object": "t", "columns": [{"name": "a", "type": "INT"}]},
                      "conditions": [{"column": "a", "op": "=", "value": 1}],
                      "sink": {"datasource": "kafka_local", "object": "x"}}, "42704", 'params.source.datasource: datasource "nope" does not exist'),
    ("filter_alert", {"source": {"datasource": "es_local", "object": "idx", "columns": [{"name": "a", "type": "INT"}]},
                      "conditions": [{"column": "a", "op": "=", "value": 1}],
                      "sink": {"datasource": "kafka_local", "object": "x"}}, "42809", "can only be a sink"),
    ("filter_alert", {"source": {"datasource": "kafka_local", "object": "t", "columns": [{"name": "a", "type": "INT"}]},
                      "conditions": [{"column": "a", "op": "=", "value": "one"}],
                      "sink": {"datasource": "kafka_local", "object": "x"}}, "42804", "params.conditions[0].value"),
    ("filter_alert", {"source": {"datasource": "kafka_local", "object": "t", "columns": [{"name": "a", "type": "INT"}]},
                      "conditions": [{"column": "a", "op": "=", "value": 1}], "extra": 1,
                      "sink": {"datasource": "kafka_local", "object": "x"}}, "22023", "params.extra: unknown field"),
    ("filter_alert", {"source": {"datasource": "kafka_local", "object": "t", "columns": "a INT"},
                      "conditions": [], "sink": {"datasource": "kafka_local", "object": "x"}}, "22023", "params.source.columns: invalid type"),
    ("filter_alert", {"source": {"datasource": "kafka_local", "object": "t'); DROP TABLE x; --", "columns": [{"name": "a", "type": "INT"}]},
                      "conditions": [{"column": "a", "op": "=", "value": 1}],
                      "sink": {"datasource": "kafka_local", "object": "x"}}, "22023", "params.source.object"),
    ("cep", {"source": {"datasource": "kafka_local", "object": "t", "columns": [{"name": "a", "type": "INT"}]},
             "pattern": [], "measures": [], "sink": {"datasource": "kafka_local", "object": "x"}}, "22023", "params.pattern: must have at least one variable"),
]


@pytest.mark.parametrize("template,params,code,msg", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_definitions_are_rejected_and_nothing_is_stored(db, template, params, code, msg):
    before = pipeline_rows(db)
    with pytest.raises(psycopg.Error) as e:
        db.execute("SELECT * FROM flink.create_pipeline('bad_one', %s, %s)",
                   (template, json.dumps(params) if params is not None else None))
    assert e.value.diag.sqlstate == code, str(e.value)
    assert msg in str(e.value)
    assert e.value.diag.message_hint
    assert pipeline_rows(db) == before


def test_unknown_cluster_option_is_refused(db):
    p = example("big_orders")
    p["options"] = {"cluster": "nowhere"}
    with pytest.raises(psycopg.errors.UndefinedObject) as e:
        create(db, p, "no_cluster")
    assert "options.cluster" in str(e.value)


def test_render_masks_secrets_for_readers_and_reveals_for_admins(db, pdb):
    create(db, example("copy_customers"))
    masked = db.execute("SELECT flink.render('copy_customers')").fetchone()[0]
    assert "'password' = '***'" in masked and "example-pw" not in masked
    real = db.execute("SELECT flink.render('copy_customers', reveal_secrets => true)").fetchone()[0]
    assert "'password' = 'example-pw'" in real
    role = unique("it_reader")
    with connect("postgres") as c:
        c.execute(f"CREATE ROLE {role} LOGIN IN ROLE flink_reader")
    try:
        with connect(pdb, user=role) as r:
            assert r.execute("SELECT flink.render('copy_customers')").fetchone()[0] == masked
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                r.execute("SELECT flink.render('copy_customers', reveal_secrets => true)")
            assert "only flink_admin may reveal secrets" in str(e.value)
            assert "example-pw" not in json.dumps(r.execute("SELECT * FROM flink.pipelines").fetchall(), default=str)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute("SELECT * FROM flink.create_pipeline('x', 'sql', '{}')")
    finally:
        with connect("postgres") as c:
            c.execute(f"DROP ROLE {role}")


def test_pipelines_view_and_datasource_dependencies(db):
    create(db, example("orders_with_payments"))
    row = db.execute("SELECT template, version, datasources, length(script_hash) FROM flink.pipelines WHERE name='orders_with_payments'").fetchone()
    assert row == ("interval_join", 1, ["es_local", "kafka_local"], 64)
    db.execute("SELECT * FROM flink.register_datasource('es_tmp', 'elasticsearch', '{\"url\": \"http://127.0.0.1:9200\"}')")
    p = example("orders_to_es")
    p["params"]["sink"]["datasource"] = "es_tmp"
    create(db, p, "uses_es_tmp")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
        db.execute("SELECT flink.drop_datasource('es_tmp')")
    assert 'pipelines uses_es_tmp use it' in str(e.value)
    assert db.execute("SELECT flink.drop_datasource('es_tmp', cascade => true)").fetchone()[0] is True
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name='uses_es_tmp'").fetchone()[0] == 0


def doc_blocks():
    """The example SQL blocks of docs/pipelines.md: {name: (create statement, validate statement)}."""
    import re
    text = (pathlib.Path(__file__).parent.parent / "docs" / "pipelines.md").read_text()
    out = {}
    for m in re.finditer(r"```sql\n(SELECT \* FROM flink\.create_pipeline\('([^']+)'.*?\$\$, '.*?'\);)\n"
                         r"(SELECT \* FROM flink\.validate\('[^']+'\);)\n```", text, re.S):
        out[m.group(2)] = (m.group(1), m.group(3))
    return out


def test_the_documented_examples_are_the_tested_ones_and_run_as_written(db):
    import subprocess
    blocks = doc_blocks()
    names = [p["name"] for p in EXAMPLES["pipelines"]]
    assert sorted(blocks) == sorted(names), "docs/pipelines.md and tests/pipelines/examples.json list different examples"
    gen = pathlib.Path(__file__).parent.parent / "scripts" / "docs-example.py"
    for name, (create_sql, validate_sql) in blocks.items():
        want = subprocess.run([str(gen), name], check=True, capture_output=True, text=True).stdout
        assert f"```sql\n{create_sql}\n{validate_sql}\n```" in want, f"{name}: docs block differs from scripts/docs-example.py {name}"
        db.execute(f"SELECT flink.drop_pipeline('{name}', if_exists => true)")
        assert db.execute(create_sql).fetchone()[:2] == (name, 1)
        ok, detail, param = db.execute(validate_sql).fetchone()
        assert ok, f"{name} as documented: {detail} (parameter {param})"


def test_raw_sql_names_the_table_whose_columns_it_needs_not_a_missing_topic(db):
    """A raw SQL pipeline writing a topic that does not exist yet: create_pipeline does not try
    to describe it (it used to fail with "topic … does not exist"), it asks for its columns."""
    out = f"nope_{uuid.uuid4().hex[:8]}"
    sql = (f"INSERT INTO {{{{kafka_local.{out}}}}} SELECT city, amount FROM {{{{kafka_local.orders}}}};\n"
           f"INSERT INTO {{{{kafka_local.{out}_2}}}} SELECT city FROM {{{{kafka_local.orders}}}}")
    tables = {"kafka_local.orders": {"columns": [{"name": "city", "type": "STRING"}, {"name": "amount", "type": "DOUBLE"}]},
              f"kafka_local.{out}_2": {"columns": [{"name": "city", "type": "STRING"}]}}
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("SELECT * FROM flink.create_pipeline('raw_missing', 'sql', %s)", (json.dumps({"sql": sql, "tables": tables}),))
    assert f"params.tables.kafka_local.{out}.columns: are not known: the INSERT writes this table" in str(e.value)
    assert "Declare the columns" in e.value.diag.message_hint
    assert db.execute("SELECT count(*) FROM flink.pipelines WHERE name = 'raw_missing'").fetchone()[0] == 0
    # A statement that is not an INSERT is named by its number.
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("SELECT * FROM flink.create_pipeline('raw_missing', 'sql', %s)",
                   (json.dumps({"sql": "INSERT INTO {{kafka_local.a}} SELECT 1; DROP TABLE x", "tables": {}}),))
    assert "statement 2 is not an INSERT" in str(e.value)
