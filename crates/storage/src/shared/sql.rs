//! The SQL both backends run as written: PostgreSQL's numbered placeholders (`$1`), which
//! sqlx also binds for SQLite by their number. Statements whose dialects differ (upserts
//! with `MAX`/`GREATEST`, arrays, byte lengths) stay in each backend's `sql.rs`.

/// Run inside the write transaction of the change it numbers, so that versions are
/// handed out one by one even across processes.
pub(crate) const BUMP_ROSTER_VERSION: &str = "INSERT INTO roster_versions (host, username, version)
    VALUES ($1, $2, 1)
    ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1
    RETURNING version";

pub(crate) const COUNT_OFFLINE: &str =
    "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2";

/// Credentials go with it through `ON DELETE CASCADE`.
pub(crate) const DELETE_ACCOUNT: &str = "DELETE FROM accounts WHERE host = $1 AND username = $2";

pub(crate) const DELETE_BLOCKLIST: &str = "DELETE FROM blocklist
    WHERE host = $1 AND username = $2
    RETURNING jid";

pub(crate) const DELETE_CREDENTIALS: &str =
    "DELETE FROM scram_credentials WHERE host = $1 AND username = $2";

pub(crate) const DELETE_PENDING_IN: &str =
    "DELETE FROM pending_in WHERE host = $1 AND username = $2 AND jid = $3";

pub(crate) const DELETE_ROSTER_GROUPS: &str =
    "DELETE FROM roster_groups WHERE host = $1 AND username = $2 AND jid = $3";

pub(crate) const DELETE_ROSTER_ITEM: &str =
    "DELETE FROM roster_items WHERE host = $1 AND username = $2 AND jid = $3";

pub(crate) const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = $1";

pub(crate) const DELETE_TOMBSTONE: &str =
    "DELETE FROM roster_tombstones WHERE host = $1 AND username = $2 AND jid = $3";

pub(crate) const DELETE_TOMBSTONES_UPTO: &str = "DELETE FROM roster_tombstones
    WHERE host = $1 AND username = $2 AND jid <> '' AND version <= $3";

pub(crate) const DELETE_USER_TOKENS: &str = "DELETE FROM tokens WHERE host = $1 AND username = $2";

/// First writer wins: a concurrent insert waits for the winner's commit, then does
/// nothing, and its next statement sees the winner's value.
pub(crate) const INSERT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

pub(crate) const INSERT_OFFLINE: &str =
    "INSERT INTO offline_messages (host, username, stamp_ms, stanza) VALUES ($1, $2, $3, $4)";

/// Tokens: only a hash of each secret is stored (see `parley_proto::token`).
pub(crate) const INSERT_TOKEN: &str = "INSERT INTO tokens (id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)";

pub(crate) const LIST_ALL_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    ORDER BY host, username";

/// A page after `($1, $2)` (exclusive), in `LIST_ALL_ACCOUNTS` order.
pub(crate) const PAGE_ALL_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE (host, username) > ($1, $2)
    ORDER BY host, username
    LIMIT $3";

/// A page of host `$1` after username `$2` (exclusive).
pub(crate) const PAGE_HOST_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = $1 AND username > $2
    ORDER BY username
    LIMIT $3";

pub(crate) const LIST_HOST_ACCOUNTS: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = $1
    ORDER BY username";

pub(crate) const SELECT_ACCOUNT: &str = "SELECT host, username, created_at, password_changed_at
    FROM accounts
    WHERE host = $1 AND username = $2";

/// Byte order, as for roster items.
pub(crate) const SELECT_BLOCKLIST: &str = "SELECT jid FROM blocklist
    WHERE host = $1 AND username = $2
    ORDER BY jid";

pub(crate) const SELECT_CREDENTIALS: &str = "SELECT salt, iterations, stored_key, server_key
    FROM scram_credentials
    WHERE host = $1 AND username = $2 AND hash = $3";

pub(crate) const SELECT_META: &str = "SELECT value FROM meta WHERE key = $1";

pub(crate) const SELECT_PENDING_IN: &str = "SELECT jid, stanza
    FROM pending_in
    WHERE host = $1 AND username = $2
    ORDER BY seq";

pub(crate) const SELECT_ROSTER_GROUPS: &str = "SELECT g.jid, g.name
    FROM roster_groups g
    JOIN roster_items i ON i.host = g.host AND i.username = g.username AND i.jid = g.jid
    WHERE g.host = $1 AND g.username = $2 AND i.version > $3
    ORDER BY g.jid, g.position";

/// `jid` order is byte order, as for Rust strings: SQLite's default BINARY collation and
/// PostgreSQL's `COLLATE "C"` columns.
pub(crate) const SELECT_ROSTER_ITEMS: &str = "SELECT jid, name, subscription, ask, version
    FROM roster_items
    WHERE host = $1 AND username = $2 AND version > $3
    ORDER BY jid";

pub(crate) const SELECT_ROSTER_VERSION: &str =
    "SELECT version FROM roster_versions WHERE host = $1 AND username = $2";

pub(crate) const SELECT_SIGNOUT: &str =
    "SELECT at_ms FROM signouts WHERE host = $1 AND username = $2";

pub(crate) const SELECT_TOKEN: &str = "SELECT id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms FROM tokens WHERE id = $1";

pub(crate) const SELECT_TOMBSTONES: &str = "SELECT jid, version
    FROM roster_tombstones
    WHERE host = $1 AND username = $2 AND version > $3";

/// The newest removal record past the `keep` newest (the jid-less floor aside).
pub(crate) const SELECT_TOMBSTONE_CUT: &str = "SELECT version FROM roster_tombstones
    WHERE host = $1 AND username = $2 AND jid <> ''
    ORDER BY version DESC LIMIT 1 OFFSET $3";

pub(crate) const SELECT_USER_TOKENS: &str = "SELECT id, host, username, secret_hash, purpose, created_ms, expires_ms, last_used_ms FROM tokens WHERE host = $1 AND username = $2 ORDER BY created_ms, id";

/// One statement returns exactly what it deletes, so a concurrent push is either taken
/// or kept, never lost.
pub(crate) const TAKE_OFFLINE: &str = "DELETE FROM offline_messages
    WHERE host = $1 AND username = $2
    RETURNING seq, stamp_ms, stanza";

pub(crate) const PEEK_OFFLINE: &str = "SELECT seq, stamp_ms, stanza FROM offline_messages
    WHERE host = $1 AND username = $2 ORDER BY seq";

pub(crate) const TOUCH_TOKEN: &str = "UPDATE tokens SET last_used_ms = $1 WHERE id = $2";

/// An upsert, not `INSERT OR REPLACE`: replacing would delete the row and cascade to
/// the groups of the item.
pub(crate) const UPSERT_ROSTER_ITEM: &str = "INSERT INTO roster_items
    (host, username, jid, name, subscription, ask, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (host, username, jid) DO UPDATE SET
        name = excluded.name,
        subscription = excluded.subscription,
        ask = excluded.ask,
        version = excluded.version";

pub(crate) const UPSERT_TOMBSTONE: &str =
    "INSERT INTO roster_tombstones (host, username, jid, version)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (host, username, jid) DO UPDATE SET version = excluded.version";

/// Everything a user owns besides the account and credentials, for `delete_account`.
/// Groups go with their items through `ON DELETE CASCADE`.
pub(crate) const DELETE_USER_DATA: &[&str] = &[
    "DELETE FROM roster_items WHERE host = $1 AND username = $2",
    "DELETE FROM roster_tombstones WHERE host = $1 AND username = $2",
    "DELETE FROM roster_versions WHERE host = $1 AND username = $2",
    "DELETE FROM pending_in WHERE host = $1 AND username = $2",
    "DELETE FROM offline_messages WHERE host = $1 AND username = $2",
    "DELETE FROM tokens WHERE host = $1 AND username = $2",
    "DELETE FROM blocklist WHERE host = $1 AND username = $2",
    "DELETE FROM private_xml WHERE host = $1 AND username = $2",
    "DELETE FROM push_registrations WHERE host = $1 AND username = $2",
    "DELETE FROM archive WHERE host = $1 AND username = $2",
    "DELETE FROM archive_stats WHERE host = $1 AND username = $2",
    "DELETE FROM archive_prefs WHERE host = $1 AND username = $2",
    "DELETE FROM pep_items WHERE host = $1 AND username = $2",
    "DELETE FROM pep_nodes WHERE host = $1 AND username = $2",
];

// ----- message archive (XEP-0313) ------------------------------------------------------------

pub(crate) const ACCOUNT_EXISTS: &str =
    "SELECT COUNT(*) FROM accounts WHERE host = $1 AND username = $2";
pub(crate) const ROSTER_JIDS: &str =
    "SELECT jid FROM roster_items WHERE host = $1 AND username = $2";
pub(crate) const SELECT_ARCHIVE_PREFS: &str =
    "SELECT default_mode, always_jids, never_jids FROM archive_prefs
    WHERE host = $1 AND username = $2";
pub(crate) const UPSERT_ARCHIVE_PREFS: &str =
    "INSERT INTO archive_prefs (host, username, default_mode, always_jids, never_jids)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (host, username) DO UPDATE SET default_mode = excluded.default_mode,
        always_jids = excluded.always_jids, never_jids = excluded.never_jids";
/// The head of a multi-row archive insert; rows of 8 placeholders follow.
pub(crate) const INSERT_ARCHIVE_HEAD: &str = "INSERT INTO archive
    (host, username, id, stamp_ms, with_bare, with_resource, size, stanza) VALUES ";
/// The head of a multi-row totals update; rows of 4 placeholders follow, then
/// [`BUMP_ARCHIVE_STATS_TAIL`]. The rows' locks serialise an account's appends and trims.
pub(crate) const BUMP_ARCHIVE_STATS_HEAD: &str =
    "INSERT INTO archive_stats (host, username, items, bytes, last_stamp) VALUES ";
pub(crate) const BUMP_ARCHIVE_STATS_TAIL: &str = " ON CONFLICT (host, username) DO UPDATE
    SET items = archive_stats.items + excluded.items, bytes = archive_stats.bytes + excluded.bytes,
        last_stamp = excluded.last_stamp
    RETURNING host, username, items, bytes";
pub(crate) const SELECT_ARCHIVE_STATS: &str =
    "SELECT items, bytes FROM archive_stats WHERE host = $1 AND username = $2";
/// [`SELECT_ARCHIVE_STATS`] where the archive has a log (`ARCHIVE_LOG`, SQLite's): the
/// totals count the archive's rows only (the log's are added when it is merged), so the
/// log's are counted here, by a scan of the log as every query of it is.
pub(crate) const SELECT_ARCHIVE_STATS_WITH_LOG: &str = "SELECT
    COALESCE((SELECT items FROM archive_stats WHERE host = $1 AND username = $2), 0)
        + (SELECT COUNT(*) FROM archive_log WHERE host = $1 AND username = $2),
    COALESCE((SELECT bytes FROM archive_stats WHERE host = $1 AND username = $2), 0)
        + (SELECT COALESCE(SUM(size), 0) FROM archive_log WHERE host = $1 AND username = $2)";

/// An account's `(items, bytes)`, log included where there is one.
pub(crate) fn archive_totals_sql(with_log: bool) -> &'static str {
    if with_log {
        SELECT_ARCHIVE_STATS_WITH_LOG
    } else {
        SELECT_ARCHIVE_STATS
    }
}
/// An account's oldest messages, in the archive's order: `(stamp_ms, seq)`, which the time
/// index holds (stamps never go back within an archive, so it is the order of `seq`).
pub(crate) const OLDEST_ARCHIVED: &str = "SELECT stamp_ms, seq, size FROM archive
    WHERE host = $1 AND username = $2 ORDER BY stamp_ms, seq LIMIT $3";
pub(crate) const DELETE_ARCHIVED_UPTO: &str = "DELETE FROM archive
    WHERE host = $1 AND username = $2 AND (stamp_ms, seq) <= ($3, $4)";
pub(crate) const SHRINK_ARCHIVE_STATS: &str =
    "UPDATE archive_stats SET items = items - $3, bytes = bytes - $4
    WHERE host = $1 AND username = $2";
/// A message's place in its archive, `(stamp_ms, seq)`, from its id.
pub(crate) const ARCHIVE_SEQ_OF: &str =
    "SELECT stamp_ms, seq FROM archive WHERE host = $1 AND username = $2 AND id = $3";
/// [`ARCHIVE_SEQ_OF`] where the archive has a log (`ARCHIVE_LOG`, SQLite's): merged or
/// still in the log.
pub(crate) const ARCHIVE_SEQ_OF_WITH_LOG: &str =
    "SELECT stamp_ms, seq FROM archive WHERE host = $1 AND username = $2 AND id = $3
    UNION ALL SELECT stamp_ms, seq FROM archive_log WHERE host = $1 AND username = $2 AND id = $3";
/// An account's logged records, for its deletion (where the archive has a log).
pub(crate) const DELETE_ARCHIVE_LOG: &str =
    "DELETE FROM archive_log WHERE host = $1 AND username = $2";
/// The newest stamp of the accounts of a batch, read under the batch's locks: followed by
/// `($1, $2), ($3, $4)…` and `)`.
pub(crate) const SELECT_ARCHIVE_LAST_STAMPS_HEAD: &str =
    "SELECT host, username, last_stamp FROM archive_stats WHERE (host, username) IN (VALUES ";
pub(crate) const ARCHIVE_OWNERS: &str = "SELECT host, username FROM archive_stats";
pub(crate) const EXPIRE_ARCHIVED: &str =
    "DELETE FROM archive WHERE host = $1 AND username = $2 AND stamp_ms < $3 RETURNING size";
/// [`ARCHIVE_OWNERS`] where the archive has a log: every account with a totals row or
/// logged records older than `$1` (one scan of the log for all), and whether it has the
/// latter. An account whose records are all in the log has no totals row yet.
pub(crate) const ARCHIVE_OWNERS_WITH_LOG: &str = "SELECT host, username, MAX(in_log) > 0 FROM (
        SELECT host, username, 0 AS in_log FROM archive_stats
        UNION ALL SELECT DISTINCT host, username, 1 FROM archive_log WHERE stamp_ms < $1)
    GROUP BY host, username";
pub(crate) const EXPIRE_LOGGED: &str =
    "DELETE FROM archive_log WHERE host = $1 AND username = $2 AND stamp_ms < $3 RETURNING size";
pub(crate) const DELETE_EMPTY_ARCHIVE_STATS: &str =
    "DELETE FROM archive_stats WHERE host = $1 AND username = $2 AND items <= 0";

/// XEP-0049: one stored element by namespace.
pub(crate) const SELECT_PRIVATE: &str =
    "SELECT xml FROM private_xml WHERE host = $1 AND username = $2 AND ns = $3";
/// XEP-0049: every stored element of a user (for an export).
pub(crate) const SELECT_PRIVATE_ALL: &str =
    "SELECT ns, xml FROM private_xml WHERE host = $1 AND username = $2 ORDER BY ns";
/// How many namespaces a user stores.
pub(crate) const COUNT_PRIVATE: &str =
    "SELECT COUNT(*) FROM private_xml WHERE host = $1 AND username = $2";
/// Whether a user stores this namespace already (a replacement adds nothing to the count).
pub(crate) const HAS_PRIVATE: &str =
    "SELECT COUNT(*) FROM private_xml WHERE host = $1 AND username = $2 AND ns = $3";
/// Stores or replaces one element (both dialects speak `ON CONFLICT`).
pub(crate) const UPSERT_PRIVATE: &str = "INSERT INTO private_xml (host, username, ns, xml)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (host, username, ns) DO UPDATE SET xml = excluded.xml";

// ----- personal eventing (XEP-0163) ------------------------------------------------------------

pub(crate) const HAS_PEP_NODE: &str =
    "SELECT COUNT(*) FROM pep_nodes WHERE host = $1 AND username = $2 AND node = $3";
pub(crate) const COUNT_PEP_NODES: &str =
    "SELECT COUNT(*) FROM pep_nodes WHERE host = $1 AND username = $2";
pub(crate) const SELECT_PEP_NODE: &str = "SELECT node, access_model, persist_items, max_items,
    send_last, roster_groups FROM pep_nodes WHERE host = $1 AND username = $2 AND node = $3";
pub(crate) const SELECT_PEP_NODES: &str = "SELECT node, access_model, persist_items, max_items,
    send_last, roster_groups FROM pep_nodes WHERE host = $1 AND username = $2 ORDER BY node";
pub(crate) const UPSERT_PEP_NODE: &str = "INSERT INTO pep_nodes
    (host, username, node, access_model, persist_items, max_items, send_last, roster_groups)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (host, username, node) DO UPDATE SET access_model = excluded.access_model,
        persist_items = excluded.persist_items, max_items = excluded.max_items,
        send_last = excluded.send_last, roster_groups = excluded.roster_groups";
/// Keeps the node's newest `$4` items.
pub(crate) const TRIM_PEP_ITEMS: &str = "DELETE FROM pep_items
    WHERE host = $1 AND username = $2 AND node = $3 AND seq NOT IN (
        SELECT seq FROM pep_items WHERE host = $1 AND username = $2 AND node = $3
        ORDER BY seq DESC LIMIT $4)";
pub(crate) const DELETE_PEP_ITEM: &str =
    "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3 AND id = $4";
pub(crate) const INSERT_PEP_ITEM: &str = "INSERT INTO pep_items
    (host, username, node, id, stamp_ms, payload) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const SELECT_PEP_ITEMS: &str = "SELECT id, stamp_ms, payload FROM pep_items
    WHERE host = $1 AND username = $2 AND node = $3 ORDER BY seq";
/// The newest item of one node (a user's avatar metadata, read at login).
pub(crate) const SELECT_NEWEST_PEP_ITEM: &str = "SELECT id, stamp_ms, payload FROM pep_items
    WHERE host = $1 AND username = $2 AND node = $3 ORDER BY seq DESC LIMIT 1";
pub(crate) const DELETE_PEP_NODE_ITEMS: &str =
    "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3";
pub(crate) const DELETE_PEP_NODE: &str =
    "DELETE FROM pep_nodes WHERE host = $1 AND username = $2 AND node = $3";
pub(crate) const SELECT_CAPS: &str = "SELECT features FROM caps_cache WHERE ver = $1";
pub(crate) const UPSERT_CAPS: &str = "INSERT INTO caps_cache (ver, features, stored_ms)
    VALUES ($1, $2, $3) ON CONFLICT (ver) DO NOTHING";

// ----- invitations (XEP-0401 / XEP-0445) ----------------------------------------------------

/// Spent or expired as of `$1`.
pub(crate) const PRUNE_INVITES: &str =
    "DELETE FROM invites WHERE uses_left <= 0 OR expires_ms <= $1";
pub(crate) const INSERT_INVITE: &str = "INSERT INTO invites
    (id, host, secret_hash, created_ms, expires_ms, uses_left) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const SELECT_LIVE_INVITE: &str =
    "SELECT id, host, secret_hash, created_ms, expires_ms, uses_left
    FROM invites WHERE secret_hash = $1 AND host = $2 AND expires_ms > $3 AND uses_left > 0";
/// One use, only while live: two registrations racing for the last use cannot both have it.
pub(crate) const TAKE_INVITE: &str = "UPDATE invites SET uses_left = uses_left - 1
    WHERE secret_hash = $1 AND host = $2 AND expires_ms > $3 AND uses_left > 0";
pub(crate) const GIVE_BACK_INVITE: &str =
    "UPDATE invites SET uses_left = uses_left + 1 WHERE secret_hash = $1";
pub(crate) const SELECT_INVITES: &str =
    "SELECT id, host, secret_hash, created_ms, expires_ms, uses_left
    FROM invites ORDER BY created_ms, id";
pub(crate) const DELETE_INVITE: &str = "DELETE FROM invites WHERE id = $1";

// ----- per-address registration counts ----------------------------------------------------------

/// Windows that started at or before `$1` are over.
pub(crate) const EXPIRE_SIGNUP_COUNTS: &str =
    "DELETE FROM signup_counts WHERE window_start_ms <= $1";
pub(crate) const SELECT_SIGNUP_COUNT: &str = "SELECT count FROM signup_counts WHERE address = $1";
pub(crate) const COUNT_SIGNUP_ADDRESSES: &str = "SELECT COUNT(*) FROM signup_counts";
/// A new address starts its window; a known one (its window still on, the expired ones are
/// gone) counts one more only while under `$3`: no row changes when it is at its limit.
pub(crate) const TAKE_SIGNUP: &str = "INSERT INTO signup_counts (address, window_start_ms, count)
    VALUES ($1, $2, 1)
    ON CONFLICT (address) DO UPDATE SET count = signup_counts.count + 1
    WHERE signup_counts.count < $3";
pub(crate) const GIVE_BACK_SIGNUP: &str =
    "UPDATE signup_counts SET count = count - 1 WHERE address = $1 AND count > 0";

/// XEP-0363: bytes and number of an account's files alive at `$3`.
/// (PostgreSQL's SUM of BIGINT is NUMERIC: cast back.)
pub(crate) const UPLOAD_USAGE: &str =
    "SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0), COUNT(*) FROM uploads
    WHERE host = $1 AND username = $2 AND expires_ms > $3";
/// A new file; nothing when its id is taken.
pub(crate) const INSERT_UPLOAD: &str = "INSERT INTO uploads
    (id, host, username, filename, content_type, size, created_ms, expires_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";
pub(crate) const SELECT_UPLOAD: &str = "SELECT id, host, username, filename, content_type,
    size, created_ms, expires_ms FROM uploads WHERE id = $1";
/// Up to `$2` files expired at `$1`, deleted; their ids.
pub(crate) const EXPIRE_UPLOADS: &str = "DELETE FROM uploads WHERE id IN
    (SELECT id FROM uploads WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $2) RETURNING id";

/// XEP-0357: an account's registrations other than `($3, $4)`.
pub(crate) const COUNT_OTHER_PUSH: &str = "SELECT COUNT(*) FROM push_registrations
    WHERE host = $1 AND username = $2 AND NOT (jid = $3 AND node = $4)";
pub(crate) const UPSERT_PUSH: &str = "INSERT INTO push_registrations
    (host, username, jid, node, options) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (host, username, jid, node) DO UPDATE SET options = excluded.options";
/// `$4` empty: every node of the jid.
pub(crate) const DELETE_PUSH: &str = "DELETE FROM push_registrations
    WHERE host = $1 AND username = $2 AND jid = $3 AND ($4 = '' OR node = $4)";
pub(crate) const SELECT_PUSH: &str = "SELECT jid, node, options FROM push_registrations
    WHERE host = $1 AND username = $2 ORDER BY jid, node";

// ----- multi-user chat (XEP-0045) --------------------------------------------------------------

pub(crate) const SELECT_MUC_ROOM: &str = "SELECT service, name, config, subject, public,
    persistent, created_ms FROM muc_rooms WHERE service = $1 AND name = $2";
/// Names are never empty, so `$2 = ''` starts at the first room; `$3` true lists private
/// rooms too.
pub(crate) const SELECT_MUC_ROOMS: &str = "SELECT service, name, config, subject, public,
    persistent, created_ms FROM muc_rooms
    WHERE service = $1 AND name > $2 AND (public OR $3)
    ORDER BY name LIMIT $4";
pub(crate) const COUNT_MUC_ROOMS: &str = "SELECT COUNT(*) FROM muc_rooms WHERE service = $1";
pub(crate) const HAS_MUC_ROOM: &str =
    "SELECT COUNT(*) FROM muc_rooms WHERE service = $1 AND name = $2";
/// The rooms of service `$1` that `$2` owns (the index `muc_affiliations_by_jid`).
pub(crate) const COUNT_MUC_OWNED: &str = "SELECT COUNT(*) FROM muc_affiliations
    WHERE service = $1 AND jid = $2 AND affiliation = 'owner'";
/// Nothing when the room exists: a creation racing another of the same room waits for it,
/// then finds the room taken.
pub(crate) const INSERT_MUC_ROOM: &str = "INSERT INTO muc_rooms
    (service, name, config, subject, public, persistent, created_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (service, name) DO NOTHING";
pub(crate) const UPDATE_MUC_ROOM: &str = "UPDATE muc_rooms
    SET config = $3, subject = $4, public = $5, persistent = $6
    WHERE service = $1 AND name = $2";
pub(crate) const DELETE_MUC_ROOM: &str = "DELETE FROM muc_rooms WHERE service = $1 AND name = $2";
pub(crate) const SELECT_MUC_AFFILIATIONS: &str = "SELECT jid, affiliation, nick, reason
    FROM muc_affiliations WHERE service = $1 AND name = $2 ORDER BY jid";
pub(crate) const UPSERT_MUC_AFFILIATION: &str = "INSERT INTO muc_affiliations
    (service, name, jid, affiliation, nick, reason) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (service, name, jid) DO UPDATE SET affiliation = excluded.affiliation,
        nick = excluded.nick, reason = excluded.reason";
pub(crate) const DELETE_MUC_AFFILIATION: &str =
    "DELETE FROM muc_affiliations WHERE service = $1 AND name = $2 AND jid = $3";
pub(crate) const SELECT_MUC_OCCUPANTS: &str = "SELECT jid, nick, role, presence
    FROM muc_occupants WHERE service = $1 AND name = $2 ORDER BY jid";
pub(crate) const UPSERT_MUC_OCCUPANT: &str = "INSERT INTO muc_occupants
    (service, name, jid, nick, role, presence) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (service, name, jid) DO UPDATE SET nick = excluded.nick,
        role = excluded.role, presence = excluded.presence";
pub(crate) const DELETE_MUC_OCCUPANT: &str =
    "DELETE FROM muc_occupants WHERE service = $1 AND name = $2 AND jid = $3";
pub(crate) const CLEAR_MUC_OCCUPANTS: &str =
    "DELETE FROM muc_occupants WHERE service = $1 AND name = $2";
/// A room's rows besides the room itself, for its destruction (and for a fresh creation,
/// whatever raced the destruction of an earlier room of the name).
pub(crate) const DELETE_MUC_ROOM_ROWS: &[&str] = &[
    "DELETE FROM muc_affiliations WHERE service = $1 AND name = $2",
    CLEAR_MUC_OCCUPANTS,
];
/// A room's archive is the archive of `name@service`: `$1` the service, `$2` the name.
pub(crate) const DELETE_MUC_ARCHIVE: &[&str] = &[
    "DELETE FROM archive WHERE host = $1 AND username = $2",
    "DELETE FROM archive_stats WHERE host = $1 AND username = $2",
];
