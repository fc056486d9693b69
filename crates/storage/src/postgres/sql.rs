//! The PostgreSQL backend's schema history and SQL where its dialect differs from SQLite's
//! (the statements both run as written are in `crate::shared::sql`); the method bodies that
//! run it are shared (`crate::shared`).

use crate::migrate::Migration;

/// PostgreSQL's archive batches go straight into `archive`: its B-trees log a record per
/// insert, not a page per commit, so SQLite's log (`sqlite/archive_thread.rs`) would buy
/// nothing here, and a query over two tables loses PostgreSQL's ordered index scan.
pub(crate) const ARCHIVE_LOG: bool = false;

/// Schema history, numbered like SQLite's so that a version means the same step (16, the
/// archive's log, only records here that PostgreSQL keeps none). Never edit a released
/// migration: append a new one.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, SCRAM credentials and meta",
        statements: &[
            r#"CREATE TABLE accounts (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL,
                password_changed_at BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#,
            r#"CREATE TABLE scram_credentials (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                hash TEXT COLLATE "C" NOT NULL,
                salt BYTEA NOT NULL,
                iterations BIGINT NOT NULL,
                stored_key BYTEA NOT NULL,
                server_key BYTEA NOT NULL,
                PRIMARY KEY (host, username, hash),
                FOREIGN KEY (host, username)
                    REFERENCES accounts (host, username) ON DELETE CASCADE
            )"#,
            r#"CREATE TABLE meta (
                key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                value BYTEA NOT NULL
            )"#,
        ],
    },
    // As in SQLite, per-user tables have no foreign key to `accounts`.
    Migration {
        version: 2,
        description: "rosters, pending subscription requests, offline messages",
        statements: &[
            r#"CREATE TABLE roster_versions (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#,
            r#"CREATE TABLE roster_items (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                name TEXT,
                subscription TEXT NOT NULL
                    CHECK (subscription IN ('none', 'to', 'from', 'both')),
                ask BOOLEAN NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )"#,
            r#"CREATE TABLE roster_groups (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                position BIGINT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (host, username, jid, position),
                FOREIGN KEY (host, username, jid)
                    REFERENCES roster_items (host, username, jid) ON DELETE CASCADE
            )"#,
            r#"CREATE TABLE roster_tombstones (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (host, username, jid)
            )"#,
            // A sequence default rather than an identity column: a repeated request takes
            // `excluded.seq`, a fresh number, in one upsert.
            r#"CREATE TABLE pending_in (
                seq BIGSERIAL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                stanza TEXT NOT NULL,
                UNIQUE (host, username, jid)
            )"#,
            r#"CREATE TABLE offline_messages (
                seq BIGSERIAL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                stamp_ms BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )"#,
            "CREATE INDEX offline_messages_by_user ON offline_messages (host, username, seq)",
        ],
    },
    Migration {
        version: 3,
        description: "authentication tokens (mod_tokenauth style: only a hash of the secret)",
        statements: &[
            r#"CREATE TABLE tokens (
                id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                secret_hash BYTEA NOT NULL,
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
            r#"CREATE TABLE blocklist (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (host, username, jid)
            )"#,
        ],
    },
    Migration {
        version: 5,
        description: "sign-out-everywhere times (JWTs issued before are refused)",
        statements: &[r#"CREATE TABLE signouts (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                at_ms BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#],
    },
    Migration {
        version: 6,
        description: "private XML storage (XEP-0049)",
        statements: &[r#"CREATE TABLE private_xml (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                ns TEXT COLLATE "C" NOT NULL,
                xml TEXT NOT NULL,
                PRIMARY KEY (host, username, ns)
            )"#],
    },
    Migration {
        version: 7,
        description: "message archive (XEP-0313) with preferences and per-account totals",
        statements: &[
            r#"CREATE TABLE archive (
                seq BIGSERIAL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                id TEXT COLLATE "C" NOT NULL,
                stamp_ms BIGINT NOT NULL,
                with_bare TEXT COLLATE "C" NOT NULL,
                with_resource TEXT COLLATE "C" NOT NULL,
                size BIGINT NOT NULL,
                stanza TEXT NOT NULL
            )"#,
            "CREATE UNIQUE INDEX archive_by_id ON archive (host, username, id)",
            "CREATE INDEX archive_by_owner ON archive (host, username, seq)",
            "CREATE INDEX archive_by_with ON archive (host, username, with_bare, seq)",
            "CREATE INDEX archive_by_stamp ON archive (host, username, stamp_ms)",
            r#"CREATE TABLE archive_stats (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                items BIGINT NOT NULL,
                bytes BIGINT NOT NULL,
                PRIMARY KEY (host, username)
            )"#,
            r#"CREATE TABLE archive_prefs (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                default_mode TEXT NOT NULL,
                always_jids TEXT NOT NULL,
                never_jids TEXT NOT NULL,
                PRIMARY KEY (host, username)
            )"#,
        ],
    },
    Migration {
        version: 8,
        description: "personal eventing (XEP-0163) nodes and items, entity capabilities cache",
        statements: &[
            r#"CREATE TABLE pep_nodes (
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                node TEXT COLLATE "C" NOT NULL,
                access_model TEXT NOT NULL,
                persist_items BIGINT NOT NULL,
                max_items BIGINT NOT NULL,
                send_last TEXT NOT NULL,
                roster_groups TEXT NOT NULL,
                PRIMARY KEY (host, username, node)
            )"#,
            r#"CREATE TABLE pep_items (
                seq BIGSERIAL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                username TEXT COLLATE "C" NOT NULL,
                node TEXT COLLATE "C" NOT NULL,
                id TEXT COLLATE "C" NOT NULL,
                stamp_ms BIGINT NOT NULL,
                payload TEXT NOT NULL
            )"#,
            "CREATE UNIQUE INDEX pep_items_by_id ON pep_items (host, username, node, id)",
            "CREATE INDEX pep_items_by_node ON pep_items (host, username, node, seq)",
            r#"CREATE TABLE caps_cache (
                ver TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                features TEXT NOT NULL,
                stored_ms BIGINT NOT NULL
            )"#,
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
            // Ties of a stamp in the archive's order, as SQLite's index has them (the rowid).
            "DROP INDEX archive_by_stamp",
            "CREATE INDEX archive_by_stamp ON archive (host, username, stamp_ms, seq)",
        ],
    },
    Migration {
        version: 10,
        description: "invitations to register (XEP-0401/0445): only a hash of each secret",
        statements: &[r#"CREATE TABLE invites (
                id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                host TEXT COLLATE "C" NOT NULL,
                secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
                created_ms BIGINT NOT NULL,
                expires_ms BIGINT NOT NULL,
                uses_left BIGINT NOT NULL
            )"#],
    },
    Migration {
        version: 11,
        description: "per-address counts of in-band registrations, for the whole cluster",
        statements: &[r#"CREATE TABLE signup_counts (
                address TEXT COLLATE "C" NOT NULL PRIMARY KEY,
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
            // the contact index ends with the stamp to page the same way.
            "DROP INDEX archive_by_owner",
            "DROP INDEX archive_by_with",
            "CREATE INDEX archive_by_with ON archive (host, username, with_bare, stamp_ms, seq)",
        ],
    },
    Migration {
        version: 13,
        description: "files shared by HTTP upload (XEP-0363): owner, name, type, size, expiry",
        statements: &[
            r#"CREATE TABLE uploads (
                id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
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
                service TEXT COLLATE "C" NOT NULL,
                name TEXT COLLATE "C" NOT NULL,
                config TEXT NOT NULL,
                subject TEXT,
                public BOOLEAN NOT NULL,
                persistent BOOLEAN NOT NULL,
                created_ms BIGINT NOT NULL,
                PRIMARY KEY (service, name)
            )"#,
            r#"CREATE TABLE muc_affiliations (
                service TEXT COLLATE "C" NOT NULL,
                name TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                affiliation TEXT NOT NULL
                    CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
                nick TEXT,
                reason TEXT,
                PRIMARY KEY (service, name, jid)
            )"#,
            // Counts the rooms a JID owns on a service, for the cap on creations.
            "CREATE INDEX muc_affiliations_by_jid ON muc_affiliations (service, jid, affiliation)",
            r#"CREATE TABLE muc_occupants (
                service TEXT COLLATE "C" NOT NULL,
                name TEXT COLLATE "C" NOT NULL,
                jid TEXT COLLATE "C" NOT NULL,
                nick TEXT NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('moderator', 'participant', 'visitor')),
                presence TEXT NOT NULL,
                PRIMARY KEY (service, name, jid)
            )"#,
        ],
    },
    Migration {
        version: 16,
        description: "the archive has no log here: batches go straight into it (SQLite's 16 adds one)",
        statements: &["COMMENT ON TABLE archive IS
            'appended to directly; SQLite keeps a log beside its archive (migration 16), PostgreSQL does not (ARCHIVE_LOG)'"],
    },
    Migration {
        version: 17,
        description: "an account's archive totals count the archive's records (SQLite's 17 leaves its log's out)",
        statements: &["COMMENT ON TABLE archive_stats IS
            'each account''s records in archive; SQLite counts its log''s at their merge (migration 17)'"],
    },
];

pub(super) const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// The time only moves forward, so that two sign-outs racing keep the later one.
pub(super) const UPSERT_SIGNOUT: &str =
    "INSERT INTO signouts (host, username, at_ms) VALUES ($1, $2, $3)
    ON CONFLICT (host, username) DO UPDATE SET at_ms = GREATEST(signouts.at_ms, excluded.at_ms)";

/// Creates the accounts absent from the arrays; returns the ones it created.
pub(super) const INSERT_ACCOUNTS: &str =
    "INSERT INTO accounts (host, username, created_at, password_changed_at)
    SELECT h, u, $3, $3 FROM UNNEST($1::text[], $2::text[]) AS t (h, u)
    ON CONFLICT (host, username) DO NOTHING
    RETURNING host, username";

/// Callers remove repeated keys first: one statement may not update a row twice.
pub(super) const INSERT_CREDENTIALS: &str = "INSERT INTO scram_credentials
    (host, username, hash, salt, iterations, stored_key, server_key)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int8[],
        $6::bytea[], $7::bytea[])
    ON CONFLICT (host, username, hash) DO UPDATE SET
        salt = excluded.salt,
        iterations = excluded.iterations,
        stored_key = excluded.stored_key,
        server_key = excluded.server_key";

/// `GREATEST` keeps the timestamp monotonic should the clock step backwards.
pub(super) const TOUCH_PASSWORD: &str = "UPDATE accounts
    SET password_changed_at = GREATEST(password_changed_at, $1)
    WHERE host = $2 AND username = $3";

/// Serialises one kind of write for one user until the transaction ends; a hash
/// collision between two users only makes them wait for each other.
pub(super) const LOCK_USER: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))";

pub(super) const INSERT_ROSTER_GROUPS: &str =
    "INSERT INTO roster_groups (host, username, jid, position, name)
    SELECT $1, $2, $3, p, n FROM UNNEST($4::int8[], $5::text[]) AS t (p, n)";

/// The floor only ever rises.
pub(super) const UPSERT_TOMBSTONE_FLOOR: &str =
    "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES ($1, $2, '', $3)
    ON CONFLICT (host, username, jid)
    DO UPDATE SET version = GREATEST(roster_tombstones.version, excluded.version)";

/// A repeated request takes the fresh sequence number of the proposed row, so it moves
/// to the end of the arrival order; one statement, so concurrent puts cannot collide.
pub(super) const UPSERT_PENDING_IN: &str = "INSERT INTO pending_in (host, username, jid, stanza)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (host, username, jid) DO UPDATE SET
        stanza = excluded.stanza,
        seq = excluded.seq";

/// Messages and their bytes (UTF-8), for the caps.
pub(super) const COUNT_OFFLINE_BYTES: &str =
    "SELECT COUNT(*), COALESCE(SUM(octet_length(stanza)), 0)::BIGINT
    FROM offline_messages WHERE host = $1 AND username = $2";

/// Returns the jids it inserted, that is those not blocked before. Callers remove
/// repeats first, so that each new jid comes back once.
pub(super) const INSERT_BLOCKED: &str = "INSERT INTO blocklist (host, username, jid)
    SELECT $1, $2, j FROM UNNEST($3::text[]) AS t (j)
    ON CONFLICT (host, username, jid) DO NOTHING
    RETURNING jid";

pub(super) const DELETE_BLOCKED: &str = "DELETE FROM blocklist
    WHERE host = $1 AND username = $2 AND jid = ANY($3::text[])
    RETURNING jid";
