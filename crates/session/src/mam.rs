//! Message archive queries and preferences (XEP-0313, XEP-0441), to the account's own
//! archive: the form (§4.1.5), a query answered with one `<message/>` per result then the
//! iq result with `<fin/>` (§4.2-§4.3), and the preferences. Any node answers: the archive
//! is in the shared storage.
//!
//! Input pauses while storage answers, so that the results of a query come before
//! anything the client sends next is handled.

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{AsyncContext, Context};
use parley_proto::mam::{self, Archived, Fin, Prefs};
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_storage::{ArchivePage, StorageError};
use parley_xml::{Element, Limits};
use tracing::warn;

use crate::private::account_parts;
use crate::session::Session;

/// The `[mam]` settings queries need.
#[derive(Debug, Clone, Copy)]
pub struct MamSettings {
    /// Results when the client asks for no page size.
    pub default_page: usize,
    /// Most results in one page.
    pub max_page: usize,
    /// JIDs the preferences may list.
    pub max_prefs_jids: usize,
    /// Messages one session may have waiting for the archive writer (`[mam]
    /// max_in_flight_per_session`); past it, input pauses.
    pub max_in_flight: usize,
}

impl std::default::Default for MamSettings {
    fn default() -> Self {
        MamSettings {
            default_page: 50,
            max_page: 250,
            max_prefs_jids: 1000,
            max_in_flight: 64,
        }
    }
}

type Work = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Answer, Option<mam::Query>), StorageError>>>,
>;

enum Answer {
    Page(Option<ArchivePage>),
    Prefs(Prefs),
}

impl Session {
    /// An iq in `urn:xmpp:mam:2` to the account itself (the caller checked).
    pub(crate) fn mam_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        let (Some(user), Some(writer)) = (self.user(), self.env.archive.clone()) else {
            return self.bounce(&iq, StanzaCondition::ServiceUnavailable, ctx);
        };
        let Some(payload) = iq.first_child().cloned() else {
            return;
        };
        if payload.name() == "query" && self.query_after_archiving(&iq, ctx) {
            return;
        }
        let get = iq.attr("type") == Some("get");
        let settings = self.env.config.mam;
        let storage = self.env.storage.clone();
        let (username, host) = account_parts(&user);
        let work: Work = match (payload.name(), get) {
            // §4.1.5: the fields a query may use.
            ("query", true) => {
                return self.send(&iq_result(&iq).with_child(mam::query_form()), ctx)
            }
            ("query", false) => {
                let query =
                    match mam::parse_query(&payload, settings.default_page, settings.max_page) {
                        Ok(q) => q,
                        Err(e) => {
                            return self.refuse_query(&iq, StanzaCondition::BadRequest, e.0, ctx)
                        }
                    };
                Box::pin(async move {
                    let page = storage.archive_query(&username, &host, &query).await?;
                    Ok((Answer::Page(page), Some(query)))
                })
            }
            ("prefs", true) => {
                let default = writer.policy().default;
                Box::pin(async move {
                    let prefs = storage.archive_prefs(&username, &host).await?;
                    Ok((
                        Answer::Prefs(prefs.unwrap_or_else(|| Prefs::with_default(default))),
                        None,
                    ))
                })
            }
            ("prefs", false) => {
                let prefs = match Prefs::parse(&payload, settings.max_prefs_jids) {
                    Ok(p) => p,
                    Err(e) => return self.refuse_query(&iq, StanzaCondition::BadRequest, e.0, ctx),
                };
                Box::pin(async move {
                    storage.archive_set_prefs(&username, &host, &prefs).await?;
                    // Stored: this node decides with them from the next message on.
                    writer.forget(&username, &host);
                    Ok((Answer::Prefs(prefs), None))
                })
            }
            _ => {
                return self.bounce(&iq, StanzaCondition::FeatureNotImplemented, ctx);
            }
        };
        self.pause();
        ctx.wait(wrap_future::<_, Self>(work).map(move |answer, act, ctx| {
            act.resume();
            match answer {
                Ok((Answer::Prefs(prefs), _)) => {
                    act.send(&iq_result(&iq).with_child(prefs.to_element()), ctx)
                }
                Ok((Answer::Page(None), _)) => act.refuse_query(
                    &iq,
                    StanzaCondition::ItemNotFound,
                    "no message with that id in the archive".into(),
                    ctx,
                ),
                Ok((Answer::Page(Some(page)), Some(query))) => {
                    act.send_page(&iq, page, query.query_id.as_deref(), query.flip, ctx)
                }
                Ok((Answer::Page(Some(_)), None)) => {}
                Err(e) => {
                    act.span
                        .in_scope(|| warn!(error = %e, "archive query failed"));
                    act.bounce(&iq, StanzaCondition::InternalServerError, ctx);
                }
            }
        }));
    }

    fn refuse_query(
        &mut self,
        iq: &Element,
        condition: StanzaCondition,
        text: String,
        ctx: &mut Context<Self>,
    ) {
        self.bounce_with(iq, StanzaError::with_text(condition, text), ctx);
    }

    /// §4.2: the results, each from the archive's JID, then `<fin/>`.
    fn send_page(
        &mut self,
        iq: &Element,
        page: ArchivePage,
        query_id: Option<&str>,
        flip: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(me) = self.bound().map(|b| b.jid.clone()) else {
            return;
        };
        let archive = me.to_bare().to_string();
        let fin = Fin {
            complete: page.complete,
            first: page.items.first().map(|r| r.id.clone()),
            last: page.items.last().map(|r| r.id.clone()),
            first_index: page.first_index,
            count: page.count,
        };
        let mut items = page.items;
        // XEP-0313 §4.3.1: a flipped page lists its items newest first.
        if flip {
            items.reverse();
        }
        for row in items {
            let Ok(stanza) = Element::parse(row.stanza.as_bytes(), &Limits::trusted_copies())
            else {
                // Written by this server; unreadable only if the database was edited.
                self.span
                    .in_scope(|| warn!(id = %row.id, "unreadable archived message skipped"));
                continue;
            };
            let item = Archived {
                id: row.id,
                stamp_ms: row.stamp_ms,
                stanza,
            };
            self.send(
                &mam::result_message(&archive, me.as_str(), query_id, item),
                ctx,
            );
        }
        self.send(&iq_result(iq).with_child(mam::fin(&fin)), ctx);
    }
}
