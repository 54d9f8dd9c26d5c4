#!/usr/bin/env python3
"""Prints the docs/pipelines.md block of documented example pipelines (tests/pipelines/examples.json).

Usage: scripts/docs-example.py NAME [NAME ...]. The tests (tests/test_pipelines.py) execute the SQL
blocks of docs/pipelines.md and check they are exactly these examples, so paste its output, never
hand-edit an example block.
"""
import json
import pathlib
import sys

EXAMPLES = json.loads((pathlib.Path(__file__).resolve().parent.parent / "tests/pipelines/examples.json").read_text())


def block(name):
    p = next(p for p in EXAMPLES["pipelines"] if p["name"] == name)
    params = json.dumps(p["params"], indent=2)
    options = json.dumps(p["options"])
    return (f"Example `{name}`: {p['doc']}\n\n```sql\n"
            f"SELECT * FROM flink.create_pipeline('{name}', '{p['template']}', $${params}$$, '{options}');\n"
            f"SELECT * FROM flink.validate('{name}');\n```\n\n"
            f"Rendered script: [`tests/golden/{name}.sql`](../tests/golden/{name}.sql).\n")


if __name__ == "__main__":
    print("\n".join(block(n) for n in sys.argv[1:]))
