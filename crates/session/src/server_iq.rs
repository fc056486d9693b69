//! The iq requests the server answers itself: to its domain, and for the client's own account.
//!
//! XEP-0199 ping, XEP-0030 disco#info/items, XEP-0092 software version and XEP-0202 entity
//! time. A namespace the
//! server knows, asked with a type it does not implement, gets `feature-not-implemented`;
//! anything else gets `service-unavailable` (RFC 6120 §8.4). Results and errors addressed to
//! the server are consumed silently.

use actix::Context;
use parley_proto::ns;
use parley_proto::stanza_error::{iq_result, StanzaCondition, StanzaError};
use parley_xml::Element;

use crate::session::Session;

/// Features the server's own JID supports (XEP-0030).
const SERVER_FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::PING,
    ns::VERSION,
    ns::TIME,
    ns::LAST,
    crate::private::NS,
    ns::VCARD,
    ns::CARBONS,
    ns::BLOCKING,
    crate::register::NS,
];
/// Features an account's bare JID supports, answered by the server on its behalf.
const ACCOUNT_FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::PING,
    // XEP-0357 §4: the account's server can push.
    parley_proto::push::NS,
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    Server,
    Account,
}

impl Session {
    /// XEP-0030 §4: the server's items are its components (XEP-0114), as Prosody lists
    /// them, and the services it runs itself for this host (XEP-0363 upload); an account
    /// has none here.
    fn disco_items(&self, entity: Entity) -> Element {
        let mut query = Element::new("query", ns::DISCO_ITEMS);
        if entity == Entity::Server {
            let host = self.host().unwrap_or_default().to_owned();
            let mut domains = self.env.router.components();
            domains.extend(self.env.router.services_of(&host));
            for domain in domains {
                query.push_child(Element::new("item", ns::DISCO_ITEMS).with_attr("jid", domain));
            }
        }
        query
    }

    /// XEP-0215: the services asked for (all, those of a `type`, or for `<credentials/>`
    /// the ones named), with TURN credentials for the asking account when a secret is set.
    fn external_services(&self, request: &Element) -> Element {
        use parley_proto::extdisco;
        let cfg = &self.env.config.external_services;
        let user = self.user().map(|u| u.to_string()).unwrap_or_default();
        let expires = parley_proto::clock::now_s() + cfg.credential_ttl.as_secs() as i64;
        let turn = cfg
            .turn_secret
            .as_deref()
            .map(|s| (s, user.as_str(), expires));
        let chosen: Vec<extdisco::Service> = match request.name() {
            "credentials" => cfg
                .services
                .iter()
                .filter(|s| {
                    request.children().any(|want| {
                        want.attr("host") == Some(s.host.as_str())
                            && want.attr("type").is_none_or(|t| t == s.kind)
                    })
                })
                .cloned()
                .collect(),
            _ => cfg.services.clone(),
        };
        let mut answer = extdisco::services_element(&chosen, request.attr("type"), turn);
        if request.name() == "credentials" {
            let mut creds = Element::new("credentials", extdisco::NS);
            for s in answer.children() {
                creds.push_child(s.clone());
            }
            answer = creds;
        }
        answer
    }

    /// The server's disco#info (XEP-0030): its fixed features, and the configured ones.
    pub(crate) fn server_info(&self) -> Element {
        let mut info = disco_info(Entity::Server);
        if !self.env.config.external_services.services.is_empty() {
            info.push_child(
                Element::new("feature", ns::DISCO_INFO)
                    .with_attr("var", parley_proto::extdisco::NS),
            );
        }
        info
    }

    /// XEP-0115 §6.2: `node#ver` of the server's capabilities.
    fn caps_node(&self) -> String {
        format!(
            "{}#{}",
            parley_proto::caps::NODE,
            parley_proto::caps::ver(&self.server_info())
        )
    }

    /// An iq to a domain we serve.
    pub(crate) fn server_iq(&mut self, iq: Element, _domain: &str, ctx: &mut Context<Self>) {
        self.answer_iq(iq, Entity::Server, ctx);
    }

    /// An iq to the client's own bare JID (or with no `to`): the server answers for the
    /// account (RFC 6120 §10.3.3, RFC 6121 §8.5.2.1.3).
    pub(crate) fn account_iq(&mut self, iq: Element, ctx: &mut Context<Self>) {
        self.answer_iq(iq, Entity::Account, ctx);
    }

    fn answer_iq(&mut self, iq: Element, entity: Entity, ctx: &mut Context<Self>) {
        match self.iq_answer(&iq, entity) {
            Some(Ok(reply)) => self.send(&reply, ctx),
            Some(Err(err)) => self.bounce_with(&iq, err, ctx),
            None => {}
        }
    }

    /// What the server answers to `iq` for `entity`: a result, an error, or nothing (for
    /// results and errors, which are consumed).
    pub(crate) fn iq_answer(
        &self,
        iq: &Element,
        entity: Entity,
    ) -> Option<Result<Element, StanzaError>> {
        let ty = iq.attr("type").unwrap_or_default().to_owned();
        if !matches!(ty.as_str(), "get" | "set") {
            return None;
        }
        let payload = iq.first_child()?;
        let (name, payload_ns) = (payload.name().to_owned(), payload.ns().to_owned());
        let node = payload.attr("node").map(str::to_owned);
        let get = ty == "get";
        let reply = match (payload_ns.as_str(), name.as_str()) {
            (ns::PING, "ping") if get => Ok(iq_result(iq)),
            // RFC 3921 §3: legacy clients establish a session after binding (to the server or
            // with no `to`); it is a no-op, but refusing it makes them give up.
            (ns::SESSION, "session") if !get => Ok(iq_result(iq)),
            (ns::DISCO_INFO, "query") if get => match node {
                // XEP-0115 §6.2: the node of the server's caps names the same answer.
                Some(node) if entity == Entity::Server && node == self.caps_node() => {
                    let info = self.server_info().with_attr("node", node);
                    Ok(iq_result(iq).with_child(info))
                }
                Some(_) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
                None if entity == Entity::Server => {
                    Ok(iq_result(iq).with_child(self.server_info()))
                }
                None => {
                    let mut info = match entity {
                        // XEP-0163 §6.1: the account is a PEP service too.
                        Entity::Account => parley_user::pep_account_info()
                            .with_child(
                                Element::new("feature", ns::DISCO_INFO)
                                    .with_attr("var", ns::DISCO_ITEMS),
                            )
                            .with_child(
                                Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::PING),
                            ),
                        Entity::Server => disco_info(entity),
                    };
                    if self.env.archive.is_some() {
                        // XEP-0313 §7 and XEP-0359 §6: the account's archive stamps ids.
                        use parley_proto::mam;
                        for feature in [mam::NS, mam::NS_EXTENDED, mam::SID] {
                            info.push_child(
                                Element::new("feature", ns::DISCO_INFO).with_attr("var", feature),
                            );
                        }
                    }
                    Ok(iq_result(iq).with_child(info))
                }
            },
            (ns::DISCO_ITEMS, "query") if get => match node {
                Some(_) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
                None => Ok(iq_result(iq).with_child(self.disco_items(entity))),
            },
            (ns::VERSION, "query") if get && entity == Entity::Server => Ok(iq_result(iq)
                .with_child(
                    Element::new("query", ns::VERSION)
                        .with_child(Element::new("name", ns::VERSION).with_text("Parley"))
                        .with_child(
                            Element::new("version", ns::VERSION)
                                .with_text(env!("CARGO_PKG_VERSION")),
                        ),
                )),
            // XEP-0215 §3.1 and §3.3.
            (parley_proto::extdisco::NS, "services" | "credentials")
                if get
                    && entity == Entity::Server
                    && !self.env.config.external_services.services.is_empty() =>
            {
                Ok(iq_result(iq).with_child(self.external_services(payload)))
            }
            // XEP-0012 §5: a server's last activity is its uptime.
            (ns::LAST, "query") if get && entity == Entity::Server => {
                let up = (parley_proto::clock::now_ms() - self.env.started_ms).max(0) / 1000;
                Ok(iq_result(iq).with_child(
                    Element::new("query", ns::LAST).with_attr("seconds", up.to_string()),
                ))
            }
            // XEP-0202 §3.
            (ns::TIME, "time") if get && entity == Entity::Server => Ok(iq_result(iq).with_child(
                parley_proto::datetime::entity_time(parley_proto::clock::now_ms()),
            )),
            (ns::PING, "ping") | (ns::DISCO_INFO, "query") | (ns::DISCO_ITEMS, "query") => {
                Err(StanzaError::new(StanzaCondition::FeatureNotImplemented))
            }
            (ns::VERSION, "query") if entity == Entity::Server => {
                Err(StanzaError::new(StanzaCondition::FeatureNotImplemented))
            }
            _ => Err(StanzaError::new(StanzaCondition::ServiceUnavailable)),
        };
        Some(reply)
    }
}

fn disco_info(entity: Entity) -> Element {
    let (category, kind, features) = match entity {
        Entity::Server => ("server", "im", SERVER_FEATURES),
        Entity::Account => ("account", "registered", ACCOUNT_FEATURES),
    };
    let mut query = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", category)
            .with_attr("type", kind)
            .with_attr("name", "Parley"),
    );
    for feature in features {
        query.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *feature));
    }
    query
}
