"""Differential tests of the foreign-data wrappers (tests/difftest.py): seeded rows in a heap
table, an Elasticsearch index and a Kafka topic (with malformed messages); seeded random
queries must return exactly what the heap table returns. The long run is
scripts/differential-long.sh; a failing query is reproduced with
`python tests/difftest.py --seed S --only N --wrapper W`."""
import pytest

from conftest import ENV, connect
from difftest import Stack, compare, gen_rows

SEED = 20261130
ROWS = 1000
QUERIES = 1000


@pytest.fixture(scope="module")
def loaded(test_db):
    with connect(test_db) as c:
        st = Stack(c, ENV, SEED, gen_rows(SEED, ROWS))
        st.load(["es", "kafka"])
        yield c
        st.drop()


@pytest.mark.parametrize("wrapper", ["es", "kafka"])
def test_foreign_tables_answer_like_a_heap_table(loaded, wrapper):
    log = []
    diffs = compare(loaded, SEED, QUERIES, wrapper, log=log.append)
    assert not diffs, f"{len(diffs)} of {QUERIES} queries differ (seed {SEED}):\n" + "\n".join(log[:10])


def test_the_oracle_can_fail(loaded):
    """The comparison is not vacuous: a table with one row changed is told apart."""
    loaded.execute("CREATE TEMP TABLE h_es_changed AS SELECT * FROM difftest.h_es")
    loaded.execute("UPDATE h_es_changed SET i4 = i4 + 1 WHERE id = 3")
    from difftest import run
    q = "SELECT id, i4 FROM {T} WHERE id < 10 ORDER BY id"
    assert run(loaded, q, "difftest.h_es", "UTC") != run(loaded, q, "h_es_changed", "UTC")
    assert run(loaded, q, "difftest.h_es", "UTC") == run(loaded, q, "difftest.f_es", "UTC")
