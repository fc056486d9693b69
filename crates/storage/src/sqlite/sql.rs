//! The SQLite backend's schema history and SQL where its dialect differs from PostgreSQL's
//! (the statements both run as written are in `crate::shared::sql`); the method bodies that
//! run it are shared (`crate::shared`).

use crate::migrate::Migration;

/// A file's archive batches append to `archive_log`, merged into `archive` later
/// (`archive_thread.rs`): the shared archive queries read both tables.
pub(crate) const ARCHIVE_LOG: bool = true;

/// Schema history. Never edit a released migration: append a new one.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, SCRAM credentials and meta",
        statements: &[
            "CREATE TABLE accounts (
            host TEXT NOT NULL,
            username TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            password_changed_at BIGINT NOT NULL,
            PRIMARY KEY (host, username)
        )",
            "CREATE TABLE scram_credentials (
            host TEXT NOT NULL,
            username TEXT NOT NULL,
            hash TEXT NOT NULL,
            salt BLOB NOT NULL,
            iterations BIGINT NOT NULL,
            stored_key BLOB NOT NULL,
            server_key BLOB NOT NULL,
            PRIMARY KEY (host, username, hash),
            FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
        )",
            "CREATE TABLE meta (
            key TEXT NOT NULL PRIMARY KEY,
            value BLOB NOT NULL
        )",
        ],
    },
    // Per-user tables deliberately have no foreign key to `accounts`: storing for a user
    // must not depend on the account row (see the crate documentation), and
    // `delete_account` removes them explicitly instead of by cascade.
    Migration {
        version: 2,
        description: "rosters, pending subscription requests, offline messages",
        statements: &[
            // One row per user whose roster ever changed; absent means version 0.
            "CREATE TABLE roster_versions (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )",
            // `version` is the roster version that last wrote the row, which is what
            // RFC 6121 §2.6 replay selects on.
            "CREATE TABLE roster_items (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                name TEXT,
                subscription TEXT NOT NULL
                    CHECK (subscription IN ('none', 'to', 'from', 'both')),
                ask BOOLEAN NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )",
            // A table rather than an encoded column: any group name survives, and order
            // is explicit.
            "CREATE TABLE roster_groups (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                position BIGINT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (host, username, jid, position),
                FOREIGN KEY (host, username, jid)
                    REFERENCES roster_items (host, username, jid) ON DELETE CASCADE
            )",
            // At most one per jid (the latest removal); a later put of the jid deletes it.
            "CREATE TABLE roster_tombstones (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )",
            // `seq` orders arrivals across the whole table, which is all that is needed
            // within one user; AUTOINCREMENT never hands out a number twice.
            "CREATE TABLE pending_in (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                stanza TEXT NOT NULL,
                UNIQUE (host, username, jid)
            )",
            "CREATE TABLE offline_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                stamp_ms BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )",
            "CREATE INDEX offline_messages_by_user ON offline_messages (host, username, seq)",
        ],
    },
    Migration {
        version: 3,
        description: "authentication tokens (mod_tokenauth style: only a hash of the secret)",
        statements: &[
            r#"CREATE TABLE tokens (
                id TEXT NOT NULL PRIMARY KEY,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                secret_hash BLOB NOT NULL,
                purpose TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                expires_ms BIGINT,
                last_used_ms BIGINT
            )"#,
            "CREATE INDEX tokens_by_user ON tokens (host, username)",
        ],
    },
    Migration {
        version: 4,
        description: "blocklists (XEP-0191)",
        statements: &[
            // The key serves the per-user reads too: its prefix is `(host, username)`.
            "CREATE TABLE blocklist (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )",
        ],
    },
    Migration {
        version: 5,
        description: "sign-out-everywhere times (JWTs issued before are refused)",
        statements: &["CREATE TABLE signouts (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                at_ms BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"],
    },
    Migration {
        version: 6,
        description: "private XML storage (XEP-0049)",
        statements: &["CREATE TABLE private_xml (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                ns TEXT NOT NULL,
                xml TEXT NOT NULL,
                PRIMARY KEY (host, username, ns)
            )"],
    },
    Migration {
        version: 7,
        description: "message archive (XEP-0313) with preferences and per-account totals",
        statements: &[
            "CREATE TABLE archive (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                id TEXT NOT NULL,
                stamp_ms BIGINT NOT NULL,
                with_bare TEXT NOT NULL,
                with_resource TEXT NOT NULL,
                size BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )",
            "CREATE UNIQUE INDEX archive_by_id ON archive (host, username, id)",
            "CREATE INDEX archive_by_owner ON archive (host, username, seq)",
            "CREATE INDEX archive_by_with ON archive (host, username, with_bare, seq)",
            "CREATE INDEX archive_by_stamp ON archive (host, username, stamp_ms)",
            "CREATE TABLE archive_stats (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                items BIGINT NOT NULL,
                bytes BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )",
            "CREATE TABLE archive_prefs (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                default_mode TEXT NOT NULL,
                always_jids TEXT NOT NULL,
                never_jids TEXT NOT NULL,
                PRIMARY KEY (host, username)
            )",
        ],
    },
    Migration {
        version: 8,
        description: "personal eventing (XEP-0163) nodes and items, entity capabilities cache",
        statements: &[
            "CREATE TABLE pep_nodes (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                node TEXT NOT NULL,
                access_model TEXT NOT NULL,
                persist_items BIGINT NOT NULL,
                max_items BIGINT NOT NULL,
                send_last TEXT NOT NULL,
                roster_groups TEXT NOT NULL,
                PRIMARY KEY (host, username, node)
            )",
            "CREATE TABLE pep_items (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                node TEXT NOT NULL,
                id TEXT NOT NULL,
                stamp_ms BIGINT NOT NULL,
                payload TEXT NOT NULL
            )",
            "CREATE UNIQUE INDEX pep_items_by_id ON pep_items (host, username, node, id)",
            "CREATE INDEX pep_items_by_node ON pep_items (host, username, node, seq)",
            "CREATE TABLE caps_cache (
                ver TEXT NOT NULL PRIMARY KEY,
                features TEXT NOT NULL,
                stored_ms BIGINT NOT NULL
            )",
        ],
    },
    Migration {
        version: 9,
        description:
            "archive stamps never go back within an account; the id index leads with the id",
        statements: &[
            "ALTER TABLE archive_stats ADD COLUMN last_stamp BIGINT NOT NULL DEFAULT 0",
            "UPDATE archive SET stamp_ms = m.s
                FROM (SELECT seq AS q,
                    MAX(stamp_ms) OVER (PARTITION BY host, username ORDER BY seq) AS s
                    FROM archive) AS m
                WHERE archive.seq = m.q AND archive.stamp_ms <> m.s",
            "UPDATE archive_stats SET last_stamp = COALESCE((SELECT MAX(a.stamp_ms) FROM archive a
                WHERE a.host = archive_stats.host AND a.username = archive_stats.username), 0)",
            // Ids now start with their time: keyed first by id, the index grows at one end
            // instead of at every account's place in it (one page written per batch, not
            // one per record). Unique per account still.
            "DROP INDEX archive_by_id",
            "CREATE UNIQUE INDEX archive_by_id ON archive (id, host, username)",
        ],
    },
    Migration {
        version: 10,
        description: "invitations to register (XEP-0401/0445): only a hash of each secret",
        statements: &[r#"CREATE TABLE invites (
                id TEXT NOT NULL PRIMARY KEY,
                host TEXT NOT NULL,
                secret_hash TEXT NOT NULL UNIQUE,
                created_ms BIGINT NOT NULL,
                expires_ms BIGINT NOT NULL,
                uses_left BIGINT NOT NULL
            )"#],
    },
    Migration {
        version: 11,
        description: "per-address counts of in-band registrations, for the whole cluster",
        statements: &[r#"CREATE TABLE signup_counts (
                address TEXT NOT NULL PRIMARY KEY,
                window_start_ms BIGINT NOT NULL,
                count BIGINT NOT NULL
            )"#],
    },
    Migration {
        version: 12,
        description: "the archive is paged in (stamp, seq) order: no index keyed by seq alone",
        statements: &[
            // Every index is a page written per account and commit: the time index pages
            // the archive now (stamps follow the sequence), so the sequence index goes, and
            // the contact index ends with the stamp to page the same way (SQLite's indexes
            // end with the rowid, which is `seq`).
            "DROP INDEX archive_by_owner",
            "DROP INDEX archive_by_with",
            "CREATE INDEX archive_by_with ON archive (host, username, with_bare, stamp_ms)",
        ],
    },
    Migration {
        version: 13,
        description: "files shared by HTTP upload (XEP-0363): owner, name, type, size, expiry",
        statements: &[
            r#"CREATE TABLE uploads (
                id TEXT NOT NULL PRIMARY KEY,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                filename TEXT NOT NULL,
                content_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                created_ms BIGINT NOT NULL,
                expires_ms BIGINT NOT NULL
            )"#,
            "CREATE INDEX uploads_by_owner ON uploads (host, username, expires_ms)",
            "CREATE INDEX uploads_by_expiry ON uploads (expires_ms)",
        ],
    },
    Migration {
        version: 14,
        description:
            "push registrations (XEP-0357): app server, node and publish-options per account",
        statements: &[r#"CREATE TABLE push_registrations (
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                jid TEXT NOT NULL,
                node TEXT NOT NULL,
                options TEXT NOT NULL,
                PRIMARY KEY (host, username, jid, node)
            )"#],
    },
    Migration {
        version: 15,
        description: "multi-user chat rooms (XEP-0045): configuration, affiliations, occupants",
        statements: &[
            // No foreign keys, as for per-user tables: rooms outlive their owners' accounts,
            // and `muc_destroy_room` deletes a room's rows explicitly.
            r#"CREATE TABLE muc_rooms (
                service TEXT NOT NULL,
                name TEXT NOT NULL,
                config TEXT NOT NULL,
                subject TEXT,
                public BOOLEAN NOT NULL,
                persistent BOOLEAN NOT NULL,
                created_ms BIGINT NOT NULL,
                PRIMARY KEY (service, name)
            )"#,
            r#"CREATE TABLE muc_affiliations (
                service TEXT NOT NULL,
                name TEXT NOT NULL,
                jid TEXT NOT NULL,
                affiliation TEXT NOT NULL
                    CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
                nick TEXT,
                reason TEXT,
                PRIMARY KEY (service, name, jid)
            )"#,
            // Counts the rooms a JID owns on a service, for the cap on creations.
            "CREATE INDEX muc_affiliations_by_jid ON muc_affiliations (service, jid, affiliation)",
            r#"CREATE TABLE muc_occupants (
                service TEXT NOT NULL,
                name TEXT NOT NULL,
                jid TEXT NOT NULL,
                nick TEXT NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('moderator', 'participant', 'visitor')),
                presence TEXT NOT NULL,
                PRIMARY KEY (service, name, jid)
            )"#,
        ],
    },
    Migration {
        version: 16,
        description: "archived records are appended to a log and merged into the archive later",
        statements: &[
            // Keyed by the sequence alone: a batch appends at one end (`archive_thread.rs`,
            // docs/archive.md). Every archive query reads both tables.
            r#"CREATE TABLE archive_log (
                seq INTEGER PRIMARY KEY,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                id TEXT NOT NULL,
                stamp_ms BIGINT NOT NULL,
                with_bare TEXT NOT NULL,
                with_resource TEXT NOT NULL,
                size BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )"#,
        ],
    },
    Migration {
        version: 17,
        description: "an account's archive totals count the merged records only; the log's are added at its merge",
        statements: &[
            // The archive thread no longer writes each account's totals row per batch
            // (`archive_thread.rs`): the log's records already counted come out, and the
            // merge adds them back.
            r#"UPDATE archive_stats SET
                items = items - (SELECT COUNT(*) FROM archive_log l
                    WHERE l.host = archive_stats.host AND l.username = archive_stats.username),
                bytes = bytes - (SELECT COALESCE(SUM(l.size), 0) FROM archive_log l
                    WHERE l.host = archive_stats.host AND l.username = archive_stats.username)"#,
        ],
    },
];

pub(super) const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// The time only moves forward, so that two sign-outs racing keep the later one.
pub(super) const UPSERT_SIGNOUT: &str =
    "INSERT INTO signouts (host, username, at_ms) VALUES (?, ?, ?)
    ON CONFLICT (host, username) DO UPDATE SET at_ms = MAX(signouts.at_ms, excluded.at_ms)";

pub(super) const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts (host, username, created_at, password_changed_at)
    VALUES (?, ?, ?, ?)
    ON CONFLICT (host, username) DO NOTHING";

/// Upsert, so that a hash listed twice keeps its last entry instead of failing.
pub(super) const INSERT_CREDENTIALS: &str = "INSERT INTO scram_credentials
    (host, username, hash, salt, iterations, stored_key, server_key)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (host, username, hash) DO UPDATE SET
        salt = excluded.salt,
        iterations = excluded.iterations,
        stored_key = excluded.stored_key,
        server_key = excluded.server_key";

/// `MAX` keeps the timestamp monotonic should the clock step backwards.
pub(super) const TOUCH_PASSWORD: &str = "UPDATE accounts
    SET password_changed_at = MAX(password_changed_at, ?)
    WHERE host = ? AND username = ?";

pub(super) const INSERT_ROSTER_GROUP: &str =
    "INSERT INTO roster_groups (host, username, jid, position, name) VALUES (?, ?, ?, ?, ?)";

/// The floor only ever rises.
pub(super) const UPSERT_TOMBSTONE_FLOOR: &str =
    "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES (?, ?, '', ?)
    ON CONFLICT (host, username, jid)
    DO UPDATE SET version = MAX(roster_tombstones.version, excluded.version)";

pub(super) const INSERT_PENDING_IN: &str =
    "INSERT INTO pending_in (host, username, jid, stanza) VALUES (?, ?, ?, ?)";

/// Messages and their bytes (UTF-8), for the caps.
pub(super) const COUNT_OFFLINE_BYTES: &str =
    "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(stanza AS BLOB))), 0)
    FROM offline_messages WHERE host = ? AND username = ?";

/// Affects no row for a jid already blocked, which is how `blocklist_add` tells new
/// entries (a repeat within one call included) from old ones.
pub(super) const INSERT_BLOCKED: &str =
    "INSERT INTO blocklist (host, username, jid) VALUES (?, ?, ?)
    ON CONFLICT (host, username, jid) DO NOTHING";

pub(super) const DELETE_BLOCKED: &str =
    "DELETE FROM blocklist WHERE host = ? AND username = ? AND jid = ?";
