#!/usr/bin/env python3
"""What one merge of the SQLite archive's log costs per record, for candidate layouts of the
`archive` table (docs/benchmarks.md, "A longer linger by default"): the layout as shipped
(owner and contact as text in every index), an integer owner, an integer owner and contact,
no id index, a table clustered by (owner, stamp), the stanza left in the log
(`bodies-in-log`: the merge copies the indexed columns only and empties nothing), and packed
references per account (`chunked`, see `run_packed`), and two sorted runs of references per
merge appended whole (`runs`: what an LSM store's first level writes). Each run fills a fresh WAL file with
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


def layout(owner_int, with_int, id_index=True, clustered=False, bodies_in_log=False):
    owner_cols = "owner INTEGER NOT NULL" if owner_int else TEXT_OWNER
    owner_key = "owner" if owner_int else "host, username"
    with_col = "with_id INTEGER NOT NULL" if with_int else "with_bare TEXT NOT NULL"
    with_key = "with_id" if with_int else "with_bare"
    rest = REST.format(with_col=with_col)
    if bodies_in_log:
        rest = rest.replace(", stanza TEXT NOT NULL", "")
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
        "id", "stamp_ms", with_key, "with_resource", "size"] + ([] if bodies_in_log else ["stanza"])
    return schema, cols, bodies_in_log


LAYOUTS = {
    "shipped": layout(False, False),
    "int-owner": layout(True, False),
    "int-owner-and-contact": layout(True, True),
    "no-id-index": layout(False, False, id_index=False),
    "clustered": layout(True, False, clustered=True),
    "bodies-in-log": layout(False, False, bodies_in_log=True),
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
    schema, cols, bodies_in_log = LAYOUTS[name]
    random.seed(1)
    conn = sqlite3.connect(os.path.join(directory, name + ".db"), isolation_level=None)
    conn.execute(f"PRAGMA page_size = {int(os.environ.get('PAGE_SIZE', '4096'))}")
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL",
                   "wal_autocheckpoint = 4000", "cache_size = -65536"):
        conn.execute("PRAGMA " + pragma)
    for statement in schema:
        conn.execute(statement)
    log_cols = cols + (["stanza"] if bodies_in_log else [])
    conn.execute("CREATE TABLE log (%s)" % ", ".join(
        c + (" INTEGER PRIMARY KEY" if c == "seq" else "") for c in log_cols))
    names = ", ".join(cols)
    log_names = ", ".join(log_cols)
    insert = "INSERT INTO {} (%s) VALUES (%s)" % (log_names, ", ".join(":" + c for c in log_cols))
    insert_archive = "INSERT INTO archive (%s) VALUES (%s)" % (names, ", ".join(":" + c for c in cols))
    t0, seq = 1_700_000_000_000, 1
    conn.execute("BEGIN")
    conn.executemany(insert_archive, records(seq, PRE, t0))
    if bodies_in_log:
        conn.executemany(insert.format("log"), records(seq, PRE, t0))
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
        conn.execute(f"INSERT OR IGNORE INTO archive ({names}) SELECT {names} FROM log "
                     f"WHERE seq >= {seq - LOG} ORDER BY seq")
        t1 = time.process_time()
        if not bodies_in_log:
            conn.execute("DELETE FROM log")
        t2 = time.process_time()
        conn.execute("COMMIT")
        t3 = time.process_time()
        for i, d in enumerate((t1 - t, t2 - t1, t3 - t2)):
            phases[i] += d
    per = 1e6 / (MERGES * LOG)
    print("%-22s %5.2f us per record (insert %.2f, clear %.2f, commit %.2f)"
          % (name, sum(phases) * per, phases[0] * per, phases[1] * per, phases[2] * per))


def run_packed(directory, runs):
    """Bodies stay in the log and a merge writes packed (seq, stamp) references, no id
    index (ids begin with their time). `chunked`: per account one row for the account and
    one per contact, keyed by the account (and contact) and the first stamp. `runs`: two
    runs sorted by (account, stamp) and (account, contact, stamp), in blocks of 64,
    appended whole (an LSM store's first level). Timed: reading the merged range's
    metadata from the log and the inserts and commit (SQL); the grouping, sorting and
    packing separately (Python, which a server in Rust would do in a fraction of the
    time)."""
    import struct
    from collections import defaultdict
    random.seed(1)
    name = "runs" if runs else "chunked"
    conn = sqlite3.connect(os.path.join(directory, name + ".db"), isolation_level=None)
    conn.execute(f"PRAGMA page_size = {int(os.environ.get('PAGE_SIZE', '4096'))}")
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL",
                   "wal_autocheckpoint = 4000", "cache_size = -65536"):
        conn.execute("PRAGMA " + pragma)
    log_cols = ["seq", "host", "username", "id", "stamp_ms", "with_bare", "with_resource",
                "size", "stanza"]
    conn.execute("CREATE TABLE log (%s)" % ", ".join(
        c + (" INTEGER PRIMARY KEY" if c == "seq" else "") for c in log_cols))
    if runs:
        conn.execute("CREATE TABLE runs (run INTEGER, block INTEGER, first_key TEXT, "
                     "refs BLOB, PRIMARY KEY (run, block)) WITHOUT ROWID")
    else:
        conn.execute("CREATE TABLE by_owner (host TEXT, username TEXT, first_stamp INTEGER, "
                     "first_seq INTEGER, n INTEGER, refs BLOB, "
                     "PRIMARY KEY (host, username, first_stamp, first_seq)) WITHOUT ROWID")
        conn.execute("CREATE TABLE by_with (host TEXT, username TEXT, with_bare TEXT, "
                     "first_stamp INTEGER, first_seq INTEGER, n INTEGER, refs BLOB, "
                     "PRIMARY KEY (host, username, with_bare, first_stamp, first_seq)) "
                     "WITHOUT ROWID")
    run_no = [0]
    insert = "INSERT INTO log (%s) VALUES (%s)" % (", ".join(log_cols),
                                                    ", ".join(":" + c for c in log_cols))
    t0, seq = 1_700_000_000_000, 1

    def pack(refs):
        return b"".join(struct.pack("<qq", q, st) for q, st in refs)

    def merge(lo, hi):
        t = time.process_time()
        rows = conn.execute("SELECT seq, host, username, stamp_ms, with_bare FROM log "
                            "WHERE seq >= ? AND seq < ? ORDER BY seq", (lo, hi)).fetchall()
        t1 = time.process_time()
        if runs:
            blocks = []
            for order in (sorted(rows, key=lambda r: (r[1], r[2], r[3], r[0])),
                          sorted(rows, key=lambda r: (r[1], r[2], r[4], r[3], r[0]))):
                run_no[0] += 1
                for b in range(0, len(order), 64):
                    part = order[b:b + 64]
                    blocks.append((run_no[0], b // 64, part[0][2] + "@" + part[0][1],
                                   pack((q, st) for q, _, _, st, _ in part)))
        else:
            owners, withs = defaultdict(list), defaultdict(list)
            for q, h, u, st, w in rows:
                owners[(h, u)].append((q, st))
                withs[(h, u, w)].append((q, st))
            packed_o = [(h, u, v[0][1], v[0][0], len(v), pack(v))
                        for (h, u), v in owners.items()]
            packed_w = [(h, u, w, v[0][1], v[0][0], len(v), pack(v))
                        for (h, u, w), v in withs.items()]
        t2 = time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        if runs:
            conn.executemany("INSERT INTO runs VALUES (?, ?, ?, ?)", blocks)
        else:
            conn.executemany("INSERT INTO by_owner VALUES (?, ?, ?, ?, ?, ?)", packed_o)
            conn.executemany("INSERT INTO by_with VALUES (?, ?, ?, ?, ?, ?, ?)", packed_w)
        conn.execute("COMMIT")
        t3 = time.process_time()
        return t1 - t, t3 - t2, t2 - t1

    conn.execute("BEGIN")
    conn.executemany(insert, records(seq, PRE, t0))
    conn.execute("COMMIT")
    for lo in range(seq, seq + PRE, LOG):
        merge(lo, lo + LOG)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seq += PRE
    read = write = py = 0.0
    for _ in range(MERGES):
        conn.execute("BEGIN")
        conn.executemany(insert, records(seq, LOG, t0))
        conn.execute("COMMIT")
        a, b, c = merge(seq, seq + LOG)
        read += a
        write += b
        py += c
        seq += LOG
    per = 1e6 / (MERGES * LOG)
    print("%-22s %5.2f us per record in SQLite (read %.2f, write and commit %.2f), "
          "%.2f grouping and packing in Python" % (name, (read + write) * per, read * per,
                                       write * per, py * per))


def main():
    packed = {"chunked": False, "runs": True}
    names = sys.argv[1:] or list(LAYOUTS) + list(packed)
    unknown = [n for n in names if n not in LAYOUTS and n not in packed]
    if unknown:
        sys.exit(f"unknown layout {unknown}; known: {', '.join([*LAYOUTS, *packed])}")
    with tempfile.TemporaryDirectory(prefix="parley-layouts.") as directory:
        for name in names:
            if name in packed:
                run_packed(directory, runs=packed[name])
            else:
                run(name, directory)


if __name__ == "__main__":
    main()
