//! The slot service (XEP-0363 §4) on `upload.DOMAIN`: the router hands it every stanza
//! addressed there. A local account's slot request is checked (name, size, type, quota)
//! and answered with a signed PUT URL and a GET URL; its disco#info names the service and
//! its size limit (§3). Everything else addressed to the service gets the error RFC 6120
//! gives it, once.

use std::sync::{Arc, Weak};

use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_proto::upload::{self, Grant};
use parley_router::{Router, Wake};
use parley_xml::Element;

use crate::Uploads;

/// The service for one or more `upload.` domains.
#[derive(Debug)]
pub struct UploadService {
    uploads: Arc<Uploads>,
    /// Slot requests whose quota is being read, bounded (`[upload] max_slot_lookups`).
    lookups: Arc<tokio::sync::Semaphore>,
    /// Held weakly: the router holds the service.
    router: Weak<Router>,
}

impl UploadService {
    pub fn new(uploads: Arc<Uploads>, router: &Arc<Router>) -> Arc<UploadService> {
        let lookups = Arc::new(tokio::sync::Semaphore::new(
            uploads.settings().max_slot_lookups.max(1),
        ));
        Arc::new(UploadService {
            lookups,
            uploads,
            router: Arc::downgrade(router),
        })
    }

    fn answer(&self, router: &Router, iq: Element, error: Option<StanzaError>) {
        match error {
            None => router.send(iq, Wake::IfRunning),
            Some(e) => router.bounce(&iq, e),
        }
    }

    /// XEP-0363 §3: the service's identity, feature and size limit (XEP-0128 form).
    fn disco_info(&self, iq: &Element) -> Element {
        let max = self.uploads.settings().max_file_bytes.to_string();
        let form = Element::new("x", "jabber:x:data")
            .with_attr("type", "result")
            .with_child(
                Element::new("field", "jabber:x:data")
                    .with_attr("var", "FORM_TYPE")
                    .with_attr("type", "hidden")
                    .with_child(Element::new("value", "jabber:x:data").with_text(upload::NS)),
            )
            .with_child(
                Element::new("field", "jabber:x:data")
                    .with_attr("var", "max-file-size")
                    .with_child(Element::new("value", "jabber:x:data").with_text(max)),
            );
        let query = Element::new("query", ns::DISCO_INFO)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "store")
                    .with_attr("type", "file")
                    .with_attr("name", "HTTP File Upload"),
            )
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO))
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", upload::NS))
            .with_child(form);
        iq_result(iq).with_child(query)
    }

    /// A slot request from `owner` (a local account's bare JID): checked here, the quota
    /// in a task (it reads storage), then answered.
    fn slot_request(&self, router: Arc<Router>, iq: Element, owner: jid::BareJid) {
        let Some(request) = iq.get_child("request", upload::NS) else {
            return self.answer(
                &router,
                iq,
                Some(StanzaError::new(StanzaCondition::BadRequest)),
            );
        };
        let request = match upload::parse_request(request) {
            Ok(r) => r,
            Err(e) => {
                let error = StanzaError::with_text(StanzaCondition::BadRequest, e.to_string());
                return self.answer(&router, iq, Some(error));
            }
        };
        let settings = self.uploads.settings();
        if request.size > settings.max_file_bytes {
            // §5: not-acceptable with the limit.
            let error = StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                format!("the file is larger than {} bytes", settings.max_file_bytes),
            )
            .with_app(upload::file_too_large(settings.max_file_bytes));
            return self.answer(&router, iq, Some(error));
        }
        let content_type = request
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        if !settings.allows(&content_type) {
            let error = StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                format!("files of type {content_type} are not accepted"),
            );
            return self.answer(&router, iq, Some(error));
        }
        let Ok(lookup) = self.lookups.clone().try_acquire_owned() else {
            let error = StanzaError::with_text(
                StanzaCondition::ResourceConstraint,
                "too many slot requests at once; retry",
            );
            return self.answer(&router, iq, Some(error));
        };
        let uploads = self.uploads.clone();
        tokio::spawn(async move {
            let _lookup = lookup;
            let now = parley_proto::clock::now_ms();
            let quota = uploads.quota();
            let usage = uploads
                .storage()
                .upload_usage(
                    owner.node().map_or("", |n| n.as_str()),
                    owner.domain().as_str(),
                    now,
                )
                .await;
            let error = match usage {
                Err(e) => {
                    tracing::warn!(error = %e, "upload quota unreadable");
                    Some(StanzaError::new(StanzaCondition::InternalServerError))
                }
                Ok((bytes, files))
                    if bytes.saturating_add(request.size) > quota.bytes || files >= quota.files =>
                {
                    // §5: the quota is a resource constraint, to retry once files expire.
                    Some(StanzaError::with_text(
                        StanzaCondition::ResourceConstraint,
                        "upload quota reached: files free their space when they expire",
                    ))
                }
                Ok(_) => None,
            };
            if let Some(error) = error {
                router.bounce(&iq, error);
                return;
            }
            let ttl = i64::try_from(uploads.settings().slot_ttl.as_millis()).unwrap_or(i64::MAX);
            let grant = Grant {
                id: upload::new_file_id(),
                filename: request.filename,
                size: request.size,
                content_type,
                owner: owner.to_string(),
                expires_ms: now.saturating_add(ttl),
            };
            let (put, get) = uploads.urls(&grant);
            router.send(
                iq_result(&iq).with_child(upload::slot(&put, &get)),
                Wake::IfRunning,
            );
        });
    }
}

impl parley_router::Service for UploadService {
    fn accept(&self, stanza: Element) {
        let Some(router) = self.router.upgrade() else {
            return;
        };
        if stanza.name() != "iq" {
            // RFC 6120 §10.3: nothing here takes messages; presence is ignored (§10.3.2
            // leaves it to the service), errors are never answered.
            if stanza.name() == "message" {
                router.bounce(
                    &stanza,
                    StanzaError::new(StanzaCondition::ServiceUnavailable),
                );
            }
            return;
        }
        let ty = stanza.attr("type").unwrap_or_default();
        if ty != "get" && ty != "set" {
            return;
        }
        let child = stanza
            .first_child()
            .map(|c| (c.ns().to_owned(), c.name().to_owned()));
        match child.as_ref().map(|(n, c)| (n.as_str(), c.as_str())) {
            Some((ns::DISCO_INFO, "query")) if ty == "get" => {
                let reply = self.disco_info(&stanza);
                router.send(reply, Wake::IfRunning);
            }
            Some((ns::DISCO_ITEMS, "query")) if ty == "get" => {
                let reply = iq_result(&stanza).with_child(Element::new("query", ns::DISCO_ITEMS));
                router.send(reply, Wake::IfRunning);
            }
            Some((upload::NS, "request")) if ty == "get" => {
                // Slots are for this server's accounts: the sender's address was checked
                // by the session (or server link) it came through.
                let owner = stanza
                    .attr("from")
                    .and_then(|f| f.parse::<jid::Jid>().ok())
                    .filter(|j| j.node().is_some() && router.serves(j.domain().as_str()))
                    .map(|j| j.to_bare());
                match owner {
                    Some(owner) => self.slot_request(router, stanza, owner),
                    None => router.bounce(
                        &stanza,
                        StanzaError::with_text(
                            StanzaCondition::NotAllowed,
                            "only this server's accounts may upload here",
                        ),
                    ),
                }
            }
            _ => router.bounce(
                &stanza,
                StanzaError::new(StanzaCondition::ServiceUnavailable),
            ),
        }
    }
}
