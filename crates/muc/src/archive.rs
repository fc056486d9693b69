//! The room archive (XEP-0313 for MUC): a room's messages are kept in the message archive
//! under the room's own JID (localpart and service as username and host), written by the
//! node's archive writer in its batches ([`RoomArchive`], wired by the binary), read by
//! archive queries to the room and, when a room starts on a node, to refill its history.

use parley_proto::mam::{Page, Query};
use parley_storage::{ArchiveRecord, Storage};
use parley_xml::{Element, Limits};

/// Where a room hands the records of its messages; the record is already decided (the
/// room's configuration allows archiving).
pub trait RoomArchive: Send + Sync + 'static {
    fn append(&self, record: ArchiveRecord);
    /// Resolves once every record appended before the call is written (or given up on):
    /// a room that moves to another node lets its new owner read it only then, so the
    /// history the new owner loads holds every message relayed here.
    fn written(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// The room's newest `n` archived messages, oldest first, as (stamp, message).
pub(crate) async fn recent(
    storage: &dyn Storage,
    name: &str,
    service: &str,
    n: usize,
) -> Vec<(i64, Element)> {
    let query = Query {
        query_id: None,
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        max: n,
        page: Page::Last,
        flip: false,
    };
    match storage.archive_query(name, service, &query).await {
        Ok(Some(page)) => page
            .items
            .into_iter()
            .filter_map(|row| {
                let m = Element::parse(row.stanza.as_bytes(), &Limits::trusted_copies()).ok()?;
                Some((row.stamp_ms, m))
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(room = %format!("{name}@{service}"), error = %e, "room history not read");
            Vec::new()
        }
    }
}
