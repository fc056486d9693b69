//! The account's PEP data kept in step with what older clients write elsewhere: the vCard
//! photo as the PEP avatar (XEP-0398, `avatar_sync`), and bookmarks (XEP-0411, below).
//!
//! Bookmarks compatibility (XEP-0411): a client that keeps its bookmarks in private XML
//! storage (XEP-0048, `storage:bookmarks`) and one that uses PEP native bookmarks
//! (XEP-0402) see the same rooms.
//!
//! * Reading the legacy element answers from the PEP node when the account has one (the
//!   legacy element's `<url/>` entries are merged back), else from private storage.
//! * Writing it stores it as before, then brings the PEP node in line: one publish per
//!   conference that changed (with XEP-0402's publish-options) and one retract per room
//!   that went. These are iqs from this session to its own account, on the one road every
//!   client pubsub request takes, so the user actor notifies the account's other resources
//!   as for any publication. They are sent before the client's answer, so a request the
//!   client makes after it (on any resource) comes after them at the user actor. Their
//!   answers come back here and are dropped (`SYNC_ID_PREFIX`); while any is out, a read of
//!   the legacy element answers from private storage, which already has the write.

use parley_proto::bookmarks::{self, LEGACY_NS, NODE, PUBLISH_OPTIONS};
use parley_proto::{ns, pubsub};
use parley_storage::Storage;
use parley_xml::{Element, Limits};

use crate::session::Session;

/// The id prefix of the iqs a legacy write sends to the account's PEP service; their
/// answers are this session's, not the client's.
pub(crate) const SYNC_ID_PREFIX: &str = "parley-pep-sync-";

/// The legacy element to answer a read with: built from the PEP node when there is one.
pub(crate) async fn read_legacy(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    stored: Option<Element>,
) -> Result<Option<Element>, parley_storage::StorageError> {
    if storage.pep_node(username, host, NODE).await?.is_none() {
        return Ok(stored);
    }
    let rows = storage.pep_items(username, host, NODE, None, &[]).await?;
    let items = parsed(rows);
    Ok(Some(bookmarks::items_to_legacy(&items, stored.as_ref())))
}

/// The iq payloads (`<pubsub/>`) that bring the PEP node in line with `legacy`.
pub(crate) async fn sync_payloads(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    legacy: &Element,
) -> Result<Vec<Element>, parley_storage::StorageError> {
    let current = if storage.pep_node(username, host, NODE).await?.is_some() {
        parsed(storage.pep_items(username, host, NODE, None, &[]).await?)
    } else {
        Vec::new()
    };
    let wanted = bookmarks::legacy_to_items(legacy);
    let mut out = Vec::new();
    for (jid, payload) in &wanted {
        let same = current
            .iter()
            .any(|(j, p)| j == jid && p.to_string() == payload.to_string());
        if !same {
            out.push(publish(NODE, jid, payload.clone(), PUBLISH_OPTIONS));
        }
    }
    for (jid, _) in &current {
        if !wanted.iter().any(|(j, _)| j == jid) {
            out.push(
                Element::new("pubsub", pubsub::NS).with_child(
                    Element::new("retract", pubsub::NS)
                        .with_attr("node", NODE)
                        .with_attr("notify", "true")
                        .with_child(Element::new("item", pubsub::NS).with_attr("id", jid.as_str())),
                ),
            );
        }
    }
    Ok(out)
}

/// A `<pubsub><publish/></pubsub>` payload of one item, with `options` when there are some.
pub(crate) fn publish(node: &str, id: &str, payload: Element, options: &[(&str, &str)]) -> Element {
    let publish = Element::new("pubsub", pubsub::NS).with_child(
        Element::new("publish", pubsub::NS)
            .with_attr("node", node)
            .with_child(
                Element::new("item", pubsub::NS)
                    .with_attr("id", id)
                    .with_child(payload),
            ),
    );
    if options.is_empty() {
        return publish;
    }
    let mut form = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "submit")
        .with_child(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("var", "FORM_TYPE")
                .with_attr("type", "hidden")
                .with_child(
                    Element::new("value", ns::DATA_FORMS).with_text(pubsub::PUBLISH_OPTIONS),
                ),
        );
    for (var, value) in options {
        form.push_child(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("var", *var)
                .with_child(Element::new("value", ns::DATA_FORMS).with_text(*value)),
        );
    }
    publish.with_child(Element::new("publish-options", pubsub::NS).with_child(form))
}

fn parsed(rows: Vec<parley_storage::PepItemRow>) -> Vec<(String, Element)> {
    rows.into_iter()
        .filter_map(|r| {
            Element::parse(r.payload.as_bytes(), &Limits::trusted_copies())
                .ok()
                .map(|p| (r.id, p))
        })
        .collect()
}

/// XEP-0398 §4: the PEP publications that make a vCard's new photo the account's avatar
/// (data, then metadata, under the image's SHA-1), or that disable the avatar when the photo
/// that was the avatar is removed. Nothing when PEP already has that avatar.
pub(crate) async fn avatar_sync(
    storage: &dyn Storage,
    username: &str,
    host: &str,
    before: &Element,
    card: &Element,
) -> Result<Vec<Element>, parley_storage::StorageError> {
    use parley_proto::avatar;
    let current = storage
        .pep_items(username, host, avatar::METADATA_NODE, Some(1), &[])
        .await?
        .pop()
        .and_then(|r| Element::parse(r.payload.as_bytes(), &Limits::trusted_copies()).ok())
        .and_then(|p| avatar::metadata_info(&p))
        .map(|(id, _)| id);
    Ok(match (avatar::photo_of(card), current) {
        (Some(photo), current) if current.as_deref() != Some(photo.sha1.as_str()) => vec![
            publish(
                avatar::DATA_NODE,
                &photo.sha1,
                avatar::data_payload(&photo),
                &[],
            ),
            publish(
                avatar::METADATA_NODE,
                &photo.sha1,
                avatar::metadata_payload(&photo),
                &[],
            ),
        ],
        (None, Some(id)) if avatar::photo_of(before).is_some_and(|p| p.sha1 == id) => {
            vec![publish(
                avatar::METADATA_NODE,
                "none",
                Element::new("metadata", avatar::METADATA_NODE),
                &[],
            )]
        }
        _ => Vec::new(),
    })
}

/// Whether `el` is the legacy bookmarks element.
pub(crate) fn is_legacy(el: &Element) -> bool {
    el.is("storage", LEGACY_NS)
}

impl Session {
    /// Sends sync iqs (`<pubsub/>` payloads: [`sync_payloads`], the vCard avatar's) to the
    /// account's PEP service, from this resource; their answers are dropped.
    pub(crate) fn send_pep_sync(&mut self, payloads: Vec<Element>, ctx: &mut actix::Context<Self>) {
        let Some(b) = self.bound_mut() else { return };
        let (full, bare) = (b.jid.to_string(), b.jid.to_bare().to_string());
        let mut iqs = Vec::with_capacity(payloads.len());
        for payload in payloads {
            b.pep_syncs += 1;
            iqs.push(
                Element::new("iq", ns::CLIENT)
                    .with_attr("type", "set")
                    .with_attr("id", format!("{SYNC_ID_PREFIX}{}", b.pep_syncs))
                    .with_attr("from", full.as_str())
                    .with_attr("to", bare.as_str())
                    .with_child(payload),
            );
        }
        for iq in iqs {
            self.forward_to_user(iq, ctx);
        }
    }

    /// An answer to a sync iq: ours, not the client's. True when it was one.
    pub(crate) fn took_pep_sync_answer(&mut self, el: &Element) -> bool {
        let ours = el.name() == "iq"
            && matches!(el.attr("type"), Some("result" | "error"))
            && el
                .attr("id")
                .is_some_and(|id| id.starts_with(SYNC_ID_PREFIX));
        if !ours {
            return false;
        }
        if el.attr("type") == Some("error") {
            self.span.in_scope(|| {
                tracing::warn!(
                    "a legacy bookmarks write could not be mirrored to PEP (XEP-0411): the node's configuration differs"
                )
            });
        }
        if let Some(b) = self.bound_mut() {
            b.pep_syncs = b.pep_syncs.saturating_sub(1);
        }
        true
    }
}
