"""A minimal pager for pg_flink alerts: LISTENs on channel flink_alert and prints one line per alert.

    PGDATABASE=mydb python pager.py [count] [timeout_seconds]

Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ...).
Prints "ALERT <event> <rule> <pipeline> <condition>" for each notification and exits 0 after
`count` of them (default 0: never), or 1 when `timeout_seconds` pass first (default: no timeout)."""
import json
import sys
import time

import psycopg

count = int(sys.argv[1]) if len(sys.argv) > 1 else 0
deadline = time.monotonic() + float(sys.argv[2]) if len(sys.argv) > 2 else None
with psycopg.connect(autocommit=True) as conn:
    conn.execute("LISTEN flink_alert")
    print("listening on flink_alert", file=sys.stderr, flush=True)
    seen = 0
    while not count or seen < count:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            sys.exit(1)
        for n in conn.notifies(timeout=left, stop_after=1):
            a = json.loads(n.payload)
            print(f"ALERT {a['event']} {a['rule']} {a['pipeline']} {a['condition']}", flush=True)
            seen += 1
