#!/usr/bin/env python3
"""What one merge of the SQLite archive's log costs per record, for candidate layouts of the
`archive` table (docs/benchmarks.md, "A longer linger by default"): the layout as shipped
(owner and contact as text in every index), an integer owner, an integer owner and contact,
no id index, and a table clustered by (owner, stamp). Each run fills a fresh WAL file with
PRE records over 200 accounts, then times MERGES merges of 4096 logged records (two per
message, sender's and recipient's, as the server writes them) as the archive thread does
them: one `INSERT OR IGNORE ... SELECT` from the log, the log emptied, one commit. CPU time
(`process_time`) of the merge alone, per record, split by phase.

    taskset -c 1 python3 crates/bench/archive-layouts.py [LAYOUT ...]

PAGE_SIZE (default 4096) sets the file's page size. Python's own sqlite3 module (the
system's SQLite), so the absolute figures differ from the server's bundled SQLite; compare
layouts within one run.
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

ACCOUNTS, PRE, MERGES, LOG = 200, 200_000, 12, 4096
STANZA = ("<message xmlns='jabber:client' from='user1@localhost/bench' to='user2@localhost' "
          "type='chat' id='abcdefgh'><body>" + "x" * 120 + "</body></message>")
TEXT_OWNER = "host TEXT NOT NULL, username TEXT NOT NULL"
REST = ("id TEXT NOT NULL, stamp_ms BIGINT NOT NULL, {with_col}, "
        "with_resource TEXT NOT NULL, size BIGINT NOT NULL, stanza TEXT NOT NULL")


def layout(owner_int, with_int, id_index=True, clustered=False):
    owner_cols = "owner INTEGER NOT NULL" if owner_int else TEXT_OWNER
    owner_key = "owner" if owner_int else "host, username"
    with_col = "with_id INTEGER NOT NULL" if with_int else "with_bare TEXT NOT NULL"
    with_key = "with_id" if with_int else "with_bare"
    rest = REST.format(with_col=with_col)
    if clustered:
        schema = [f"CREATE TABLE archive (seq INTEGER NOT NULL, {owner_cols}, {rest}, "
                  f"PRIMARY KEY ({owner_key}, stamp_ms, seq)) WITHOUT ROWID"]
    else:
        schema = [f"CREATE TABLE archive (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                  f"{owner_cols}, {rest})",
                  f"CREATE INDEX a_stamp ON archive ({owner_key}, stamp_ms)"]
    if id_index:
        schema.append(f"CREATE UNIQUE INDEX a_id ON archive (id{'' if owner_int else ', host, username'})")
    schema.append(f"CREATE INDEX a_with ON archive ({owner_key}, {with_key}, stamp_ms)")
    cols = ["seq"] + (["owner"] if owner_int else ["host", "username"]) + [
        "id", "stamp_ms", with_key, "with_resource", "size", "stanza"]
    return schema, cols


LAYOUTS = {
    "shipped": layout(False, False),
    "int-owner": layout(True, False),
    "int-owner-and-contact": layout(True, True),
    "no-id-index": layout(False, False, id_index=False),
    "clustered": layout(True, False, clustered=True),
}


def records(first_seq, n, t0):
    for i in range(n):
        seq = first_seq + i
        message = seq // 2
        a = (message * 7) % ACCOUNTS
        b = (a + 1) % ACCOUNTS
        owner, contact = (a, b) if seq % 2 == 0 else (b, a)
        stamp = t0 + message
        yield dict(seq=seq, owner=owner, host="localhost", username=f"user{owner}",
                   id="%012x%010x" % (stamp, random.getrandbits(40)), stamp_ms=stamp,
                   with_bare=f"user{contact}@localhost", with_id=contact,
                   with_resource="bench", size=len(STANZA), stanza=STANZA)


def run(name, directory):
    schema, cols = LAYOUTS[name]
    random.seed(1)
    conn = sqlite3.connect(os.path.join(directory, name + ".db"), isolation_level=None)
    conn.execute(f"PRAGMA page_size = {int(os.environ.get('PAGE_SIZE', '4096'))}")
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL",
                   "wal_autocheckpoint = 4000", "cache_size = -65536"):
        conn.execute("PRAGMA " + pragma)
    for statement in schema:
        conn.execute(statement)
    conn.execute("CREATE TABLE log AS SELECT * FROM archive WHERE 0")
    names = ", ".join(cols)
    insert = "INSERT INTO {} (%s) VALUES (%s)" % (names, ", ".join(":" + c for c in cols))
    t0, seq = 1_700_000_000_000, 1
    conn.execute("BEGIN")
    conn.executemany(insert.format("archive"), records(seq, PRE, t0))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seq += PRE
    phases = [0.0, 0.0, 0.0]
    for _ in range(MERGES):
        conn.execute("BEGIN")
        conn.executemany(insert.format("log"), records(seq, LOG, t0))
        conn.execute("COMMIT")
        seq += LOG
        t = time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT OR IGNORE INTO archive ({names}) SELECT {names} FROM log ORDER BY seq")
        t1 = time.process_time()
        conn.execute("DELETE FROM log")
        t2 = time.process_time()
        conn.execute("COMMIT")
        t3 = time.process_time()
        for i, d in enumerate((t1 - t, t2 - t1, t3 - t2)):
            phases[i] += d
    per = 1e6 / (MERGES * LOG)
    print("%-22s %5.2f us per record (insert %.2f, clear %.2f, commit %.2f)"
          % (name, sum(phases) * per, phases[0] * per, phases[1] * per, phases[2] * per))


def main():
    names = sys.argv[1:] or list(LAYOUTS)
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown:
        sys.exit(f"unknown layout {unknown}; known: {', '.join(LAYOUTS)}")
    with tempfile.TemporaryDirectory(prefix="parley-layouts.") as directory:
        for name in names:
            run(name, directory)


if __name__ == "__main__":
    main()
