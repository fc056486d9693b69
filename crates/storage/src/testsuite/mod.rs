//! The backend-independent test suite: every [`Storage`] implementation's tests call
//! [`run_all`](crate::testsuite::run_all) on a freshly opened store.
//!
//! Each check works under hosts carrying a random per-run tag, so the suite also passes
//! on a database that already holds data (a reused PostgreSQL test database, say).

use std::sync::Arc;

use parley_proto::sasl::{ScramCredentials, ScramHash};
use rand::Rng;

use crate::{
    AccountInfo, ImportReport, NewAccount, OfflineMessage, Roster, RosterChange, RosterItem,
    Storage, StorageError, Subscription,
};

mod accounts;
pub(crate) mod archive;
mod blocking;
mod invites;
mod login;
mod muc;
mod offline;
mod pep;
pub mod postgres;
mod private;
mod push;
mod roster;
mod tokens;
mod uploads;

/// Runs every check against `storage`, panicking on the first failure.
pub async fn run_all(storage: Arc<dyn Storage>) {
    let run = Run::new();
    let s = &*storage;
    accounts::create_and_read_back(s, &run).await;
    accounts::same_username_on_two_hosts_are_distinct(s, &run).await;
    accounts::duplicate_account_is_refused(s, &run).await;
    accounts::missing_account_is_not_found(s, &run).await;
    accounts::import_skips_existing_accounts(s, &run).await;
    accounts::list_is_sorted_and_filtered_by_host(s, &run).await;
    accounts::set_credentials_replaces_every_hash(s, &run).await;
    accounts::set_credentials_drops_hashes_not_given(s, &run).await;
    accounts::delete_cascades_to_credentials(s, &run).await;
    accounts::generated_credentials_round_trip(s, &run).await;
    accounts::server_secret_is_stable(&storage).await;
    login::user_state_reads_what_the_single_reads_do(s, &run).await;

    roster::roster_of_unknown_user_is_empty_version_zero(s, &run).await;
    roster::roster_put_bumps_version_and_replaces(s, &run).await;
    roster::roster_groups_keep_their_order(s, &run).await;
    roster::roster_remove_of_absent_item_changes_nothing(s, &run).await;
    roster::rfc6121_2_6_changes_since_replays_latest_state_per_jid(s, &run).await;
    roster::rfc6121_2_6_unknown_versions_are_refused(s, &run).await;
    roster::rosters_are_per_user(s, &run).await;
    roster::concurrent_roster_puts_get_distinct_versions(&storage, &run).await;
    offline::rfc6121_3_1_3_pending_in_keeps_arrival_order(s, &run).await;
    offline::xep0160_offline_messages_are_capped_and_taken_in_order(s, &run).await;
    offline::xep0160_concurrent_offline_pushes_respect_the_cap(&storage, &run).await;
    offline::xep0160_offline_messages_are_capped_in_bytes(s, &run).await;
    roster::rfc6121_2_6_pruned_tombstones_send_older_versions_the_whole_roster(s, &run).await;
    offline::delete_account_wipes_user_data(s, &run).await;
    blocking::xep0191_blocklists_report_changes_and_go_with_the_account(s, &run).await;
    tokens::tokens_keep_only_a_hash_and_die_with_the_password(s, &run).await;
    tokens::signed_out_time_only_moves_forward_and_outlives_the_account(s, &run).await;
    private::xep0049_private_storage_is_per_user_bounded_and_goes_with_the_account(s, &run).await;
    archive::xep0313_appends_filters_and_pages(s, &run).await;
    archive::xep0441_preferences_and_blocks_decide(s, &run).await;
    archive::xep0313_archives_are_bounded_expire_and_go_with_the_account(s, &run).await;
    archive::xep0313_time_filters_follow_archive_order(s, &run).await;
    pep::xep0163_nodes_items_and_bounds(s, &run).await;
    pep::xep0115_caps_cache(s, &run).await;
    invites::xep0445_invites_are_counted_bounded_in_time_and_revocable(s, &run).await;
    invites::signup_counts_are_windowed_bounded_and_given_back(s, &run).await;
    uploads::xep0363_uploads_are_quota_bound_and_expire(s, &run).await;
    push::xep0357_registrations_are_bounded_and_removable(s, &run).await;
    muc::xep0045_rooms_are_created_once_and_capped_per_owner(&storage, &run).await;
    muc::xep0045_room_state_round_trips(s, &run).await;
    muc::xep0045_listing_pages_and_hides_private_rooms(s, &run).await;
    muc::xep0045_destroy_removes_everything(s, &run).await;
    muc::xep0045_rooms_outlive_their_owners_accounts(s, &run).await;
}

/// Cheap stand-in credentials (no PBKDF2), distinct per `seed` and hash, for tests that
/// need many accounts.
pub fn fake_credentials(hash: ScramHash, seed: &str) -> ScramCredentials {
    let name = hash.name();
    ScramCredentials {
        salt: format!("salt/{name}/{seed}").into_bytes(),
        iterations: 4096,
        stored_key: format!("stored/{name}/{seed}").into_bytes(),
        server_key: format!("server/{name}/{seed}").into_bytes(),
        hash,
    }
}

/// Tags the hosts of one run of the suite.
struct Run {
    tag: String,
}

impl Run {
    fn new() -> Self {
        Self {
            tag: format!("{:08x}", rand::thread_rng().gen::<u32>()),
        }
    }

    fn host(&self, label: &str) -> String {
        format!("{label}.{}.test", self.tag)
    }
}

fn item(jid: &str, subscription: Subscription, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: None,
        subscription,
        ask: false,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn offline_message(stamp_ms: i64, body: &str) -> OfflineMessage {
    OfflineMessage {
        stamp_ms,
        stanza: format!(
            "<message xmlns='jabber:client' from='x@example.org/r' type='chat'><body>{body}</body></message>"
        ),
    }
}

async fn put(storage: &dyn Storage, username: &str, host: &str, item: &RosterItem) -> i64 {
    storage
        .roster_put(username, host, item)
        .await
        .unwrap_or_else(|e| panic!("roster_put {} for {username}@{host}: {e}", item.jid))
}

async fn changes(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    since: i64,
) -> Option<Vec<(i64, RosterChange)>> {
    storage
        .roster_changes_since(username, host, since)
        .await
        .unwrap_or_else(|e| panic!("roster_changes_since {since}: {e}"))
}
