//! Message Archive Management (XEP-0313 `urn:xmpp:mam:2`), with the unique and stable stanza
//! ids of XEP-0359 and the result set paging of XEP-0059: which messages an archive keeps,
//! the query a client sends and its paging, the archiving preferences (XEP-0441, same
//! namespace), and the shapes of the answers. Pure: the session runs the query against
//! storage and sends what this module builds.

use parley_xml::Element;

use crate::{datetime, ns};

/// The namespace of queries, results, preferences and the feature.
pub const NS: &str = "urn:xmpp:mam:2";
/// XEP-0313 §7: `before-id`, `after-id`, `ids` and `<flip-page/>` are supported.
pub const NS_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0359.
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0059.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0004.
pub const DATA: &str = "jabber:x:data";
/// XEP-0384 (OMEMO) and XEP-0373 (OpenPGP): encrypted messages often carry no body.
const ENCRYPTED: &[(&str, &str)] = &[
    ("encrypted", "eu.siacs.conversations.axolotl"),
    ("encrypted", "urn:xmpp:omemo:2"),
    ("openpgp", "urn:xmpp:openpgp:0"),
];

/// XEP-0313 §5.1.1 and XEP-0334: whether a message holds content worth keeping. Messages
/// with a body (or an encrypted payload) are kept; chat states, receipts and markers are
/// not. `<store/>` asks for keeping, `<no-store/>` and `<no-permanent-store/>` forbid it.
/// Group chat messages belong to the room's archive, errors and headlines to no archive.
pub fn archivable(msg: &Element) -> bool {
    if msg.name() != "message" {
        return false;
    }
    if matches!(msg.attr("type"), Some("groupchat" | "error" | "headline")) {
        return false;
    }
    worth_keeping(msg)
}

/// The content rules of [`archivable`] without the type rule, for a room's archive
/// (XEP-0313 §5 for MUC) and its history: a body or an encrypted payload, and no hint
/// against storing.
pub fn worth_keeping(msg: &Element) -> bool {
    if msg.has_child("no-store", ns::HINTS) || msg.has_child("no-permanent-store", ns::HINTS) {
        return false;
    }
    msg.has_child("store", ns::HINTS)
        || msg
            .children()
            .any(|c| c.name() == "body" && !c.text().trim().is_empty())
        || ENCRYPTED.iter().any(|(n, x)| msg.has_child(n, x))
}

/// XEP-0359 §3: drops every `<stanza-id/>` whose `by` the server itself stamps (`ours`
/// says which), so that a sender cannot plant an id in someone's archive or client. Returns
/// how many went.
pub fn strip_stanza_ids(msg: &mut Element, ours: impl Fn(&str) -> bool) -> usize {
    let forged = |c: &Element| c.is("stanza-id", SID) && c.attr("by").is_none_or(&ours);
    let removed = msg.children().filter(|c| forged(c)).count();
    if removed == 0 {
        return 0;
    }
    // A foreign server's id may sit among ours, so the message is rebuilt without ours
    // rather than removing by name.
    let mut kept = Element::new(msg.name(), msg.ns());
    for (k, v) in msg.attrs() {
        kept.set_attr(k, v);
    }
    for node in msg.nodes() {
        match node {
            parley_xml::Node::Element(c) if forged(c) => {}
            parley_xml::Node::Element(c) => kept.push_child(c.clone()),
            parley_xml::Node::Text(t) => kept.push_text(t.clone()),
        }
    }
    *msg = kept;
    removed
}

/// A new archive id: XEP-0313 §5.2 wants it unique in the archive and unpredictable.
/// 20 characters of 62, in ASCII order: 8 of the time in milliseconds (so ids sort by
/// time, and the store's id index grows at one end instead of at every account's place
/// in it) and 12 random (71 bits, unguessable and unique however many ids share a
/// millisecond).
pub fn new_id() -> String {
    new_id_at(crate::clock::now_ms())
}

/// [`new_id`] for a given time (Unix ms; before 1970 counts as 1970).
pub fn new_id_at(now_ms: i64) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = [0u8; 20];
    let mut t = u64::try_from(now_ms).unwrap_or(0);
    for slot in id[..8].iter_mut().rev() {
        *slot = ALPHABET[(t % 62) as usize];
        t /= 62;
    }
    let mut rng = rand::thread_rng();
    for slot in &mut id[8..] {
        *slot = ALPHABET[rng.gen_range(0..ALPHABET.len())];
    }
    id.iter().map(|&b| b as char).collect()
}

/// XEP-0359 §4: `<stanza-id by='…' id='…'/>`.
pub fn stanza_id(by: &str, id: &str) -> Element {
    Element::new("stanza-id", SID)
        .with_attr("by", by)
        .with_attr("id", id)
}

/// The `with` filter (§4.1.1): a bare JID matches every resource of it, a full JID only
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct With {
    pub bare: String,
    pub resource: Option<String>,
}

impl With {
    /// Splits a JID that parsed; None for one that does not.
    pub fn parse(jid: &str) -> Option<With> {
        let jid = jid::Jid::new(jid).ok()?;
        Some(With {
            bare: jid.to_bare().to_string(),
            resource: jid.resource().map(|r| r.as_str().to_owned()),
        })
    }

    /// Whether `jid` (normalized text) is this address as given: the bare JID, or the full
    /// one when there is a resource. Compared in place: the archive writer asks this for
    /// every record and every listed JID, so it builds no string.
    pub fn is(&self, jid: &str) -> bool {
        if jid == self.bare {
            return true;
        }
        self.resource.as_deref().is_some_and(|r| {
            jid.strip_prefix(self.bare.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                == Some(r)
        })
    }

    /// The address as given, bare or full.
    pub fn full(&self) -> std::borrow::Cow<'_, str> {
        match &self.resource {
            Some(r) => format!("{}/{r}", self.bare).into(),
            None => self.bare.as_str().into(),
        }
    }
}

/// Which page of the matching messages (XEP-0059 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The oldest `max`.
    First,
    /// The `max` after this id.
    After(String),
    /// The `max` before this id.
    Before(String),
    /// The newest `max` (`<before/>` empty).
    Last,
    /// `max` from this position (XEP-0059 §2.6).
    Index(u64),
}

/// A parsed `<query/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Echoed in each result (§4.2).
    pub query_id: Option<String>,
    pub with: Option<With>,
    /// Unix ms, inclusive.
    pub start: Option<i64>,
    /// Unix ms, inclusive.
    pub end: Option<i64>,
    /// Only messages after this id (§4.1.3, extended).
    pub after_id: Option<String>,
    /// Only messages before this id.
    pub before_id: Option<String>,
    /// Only these messages (§4.1.4, extended); empty: no such filter.
    pub ids: Vec<String>,
    /// Page size, already bounded by the server's maximum; 0 asks only for the count.
    pub max: usize,
    pub page: Page,
    /// `<flip-page/>`: the page's items newest first.
    pub flip: bool,
}

/// Why a query is refused: `bad-request` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

fn bad(text: impl Into<String>) -> BadQuery {
    BadQuery(text.into())
}

/// Reads a `<query xmlns='urn:xmpp:mam:2'/>`: its form (XEP-0004 `submit`), its `<set/>`
/// (XEP-0059) and `<flip-page/>`. A page larger than `max_page` is cut to it (§2.1 lets the
/// responder return fewer); no `<max/>` gives `default_page`.
pub fn parse_query(
    query: &Element,
    default_page: usize,
    max_page: usize,
) -> Result<Query, BadQuery> {
    let mut q = Query {
        query_id: query.attr("queryid").map(str::to_owned),
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        max: default_page.min(max_page),
        page: Page::First,
        flip: query.has_child("flip-page", NS),
    };
    if let Some(form) = query.get_child("x", DATA) {
        if form.attr("type").is_some_and(|t| t != "submit") {
            return Err(bad("the query form must be of type 'submit'"));
        }
        for field in form.children().filter(|c| c.is("field", DATA)) {
            let var = field.attr("var").unwrap_or_default();
            let values: Vec<String> = field
                .children()
                .filter(|c| c.is("value", DATA))
                .map(Element::text)
                .collect();
            let one = || -> Result<Option<&str>, BadQuery> {
                match values.as_slice() {
                    [] => Ok(None),
                    [v] if v.is_empty() => Ok(None),
                    [v] => Ok(Some(v.as_str())),
                    _ => Err(bad(format!("field '{var}' takes one value"))),
                }
            };
            let time = |v: &str| {
                datetime::parse_xep0082(v)
                    .ok_or_else(|| bad(format!("field '{var}' is not a XEP-0082 DateTime")))
            };
            match var {
                "FORM_TYPE" => {
                    if one()? != Some(NS) {
                        return Err(bad(format!("FORM_TYPE must be {NS}")));
                    }
                }
                "with" => {
                    q.with = one()?
                        .map(|v| With::parse(v).ok_or_else(|| bad("'with' is not a JID")))
                        .transpose()?;
                }
                "start" => q.start = one()?.map(time).transpose()?,
                "end" => q.end = one()?.map(time).transpose()?,
                "after-id" => q.after_id = one()?.map(str::to_owned),
                "before-id" => q.before_id = one()?.map(str::to_owned),
                "ids" => q.ids = values.iter().filter(|v| !v.is_empty()).cloned().collect(),
                other => {
                    // §4.1.5: a field the server did not advertise.
                    return Err(bad(format!("unsupported field '{other}'")));
                }
            }
        }
    }
    if let Some(set) = query.get_child("set", RSM) {
        if let Some(max) = set.get_child("max", RSM) {
            let n: usize = max
                .text()
                .trim()
                .parse()
                .map_err(|_| bad("<max/> is not a number"))?;
            q.max = n.min(max_page);
        }
        let after = set.get_child("after", RSM).map(Element::text);
        let before = set.get_child("before", RSM).map(Element::text);
        let index = set.get_child("index", RSM).map(Element::text);
        q.page = match (after, before, index) {
            (None, None, None) => Page::First,
            (Some(a), None, None) if !a.is_empty() => Page::After(a),
            (None, Some(b), None) if b.is_empty() => Page::Last,
            (None, Some(b), None) => Page::Before(b),
            (None, None, Some(i)) => Page::Index(
                i.trim()
                    .parse()
                    .map_err(|_| bad("<index/> is not a number"))?,
            ),
            _ => return Err(bad("use one of <after/>, <before/> and <index/>")),
        };
    }
    if q.start.zip(q.end).is_some_and(|(s, e)| s > e) {
        return Err(bad("'start' is after 'end'"));
    }
    Ok(q)
}

/// §4.1.5: the query form, answered to a `get` of `<query/>`.
pub fn query_form() -> Element {
    let field = |var: &str, ty: &str| {
        Element::new("field", DATA)
            .with_attr("var", var)
            .with_attr("type", ty)
    };
    Element::new("query", NS).with_child(
        Element::new("x", DATA)
            .with_attr("type", "form")
            .with_child(
                field("FORM_TYPE", "hidden").with_child(Element::new("value", DATA).with_text(NS)),
            )
            .with_child(field("with", "jid-single"))
            .with_child(field("start", "text-single"))
            .with_child(field("end", "text-single"))
            .with_child(field("after-id", "text-single"))
            .with_child(field("before-id", "text-single"))
            .with_child(field("ids", "text-multi")),
    )
}

/// One stored message as the archive returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// Its id in this archive (the `<stanza-id/>` its recipient saw).
    pub id: String,
    /// When the server archived it (unix ms).
    pub stamp_ms: i64,
    /// The message as archived.
    pub stanza: Element,
}

/// §4.2: one result, wrapped for the querying client: the archived message forwarded
/// (XEP-0297) with its time (XEP-0203), from the archive's JID so that clients can tell it
/// from a forgery.
pub fn result_message(archive: &str, to: &str, query_id: Option<&str>, item: Archived) -> Element {
    let mut result = Element::new("result", NS).with_attr("id", item.id);
    if let Some(qid) = query_id {
        result.set_attr("queryid", qid);
    }
    Element::new("message", ns::CLIENT)
        .with_attr("from", archive)
        .with_attr("to", to)
        .with_child(
            result.with_child(
                Element::new("forwarded", ns::FORWARD)
                    .with_child(
                        Element::new("delay", ns::DELAY)
                            .with_attr("stamp", datetime::xep0082(item.stamp_ms)),
                    )
                    .with_child(item.stanza),
            ),
        )
}

/// The end of a page (§4.3, XEP-0059 §2): `complete` when the page reaches the end it moves
/// towards; `first`/`last` the page's ids, `first_index` the first's position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fin {
    pub complete: bool,
    pub first: Option<String>,
    pub last: Option<String>,
    pub first_index: Option<u64>,
    pub count: Option<u64>,
}

/// `<fin/>`, the payload of the iq result that ends a query.
pub fn fin(f: &Fin) -> Element {
    let mut set = Element::new("set", RSM);
    if let Some(first) = &f.first {
        let mut el = Element::new("first", RSM).with_text(first.clone());
        if let Some(i) = f.first_index {
            el.set_attr("index", i.to_string());
        }
        set.push_child(el);
    }
    if let Some(last) = &f.last {
        set.push_child(Element::new("last", RSM).with_text(last.clone()));
    }
    if let Some(count) = f.count {
        set.push_child(Element::new("count", RSM).with_text(count.to_string()));
    }
    let mut el = Element::new("fin", NS).with_child(set);
    if f.complete {
        el.set_attr("complete", "true");
    }
    el
}

/// XEP-0441 §2: what is archived for contacts in neither list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    Always,
    Never,
    /// Only contacts in the roster.
    Roster,
}

impl Default {
    pub fn as_str(self) -> &'static str {
        match self {
            Default::Always => "always",
            Default::Never => "never",
            Default::Roster => "roster",
        }
    }

    pub fn parse(s: &str) -> Option<Default> {
        Some(match s {
            "always" => Default::Always,
            "never" => Default::Never,
            "roster" => Default::Roster,
            _ => return None,
        })
    }
}

/// An account's archiving preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    pub default: Default,
    /// JIDs always archived.
    pub always: Vec<String>,
    /// JIDs never archived (this wins over `always`).
    pub never: Vec<String>,
}

impl Prefs {
    /// The preferences of an account that never set any.
    pub fn with_default(default: Default) -> Prefs {
        Prefs {
            default,
            always: Vec::new(),
            never: Vec::new(),
        }
    }

    /// Reads `<prefs default='…'><always><jid/>…</always><never>…</never></prefs>`, at most
    /// `max_jids` JIDs in all.
    pub fn parse(el: &Element, max_jids: usize) -> Result<Prefs, BadQuery> {
        let default = el
            .attr("default")
            .and_then(Default::parse)
            .ok_or_else(|| bad("'default' must be always, never or roster"))?;
        let list = |name: &str| -> Result<Vec<String>, BadQuery> {
            let Some(list) = el.get_child(name, NS) else {
                return Ok(Vec::new());
            };
            list.children()
                .filter(|c| c.is("jid", NS))
                .map(|c| {
                    let text = c.text();
                    jid::Jid::new(text.trim())
                        .map(|j| j.to_string())
                        .map_err(|_| bad(format!("<{name}/> lists an invalid JID")))
                })
                .collect()
        };
        let prefs = Prefs {
            default,
            always: list("always")?,
            never: list("never")?,
        };
        if prefs.always.len() + prefs.never.len() > max_jids {
            return Err(bad(format!("at most {max_jids} JIDs in the preferences")));
        }
        Ok(prefs)
    }

    pub fn to_element(&self) -> Element {
        let list = |name: &str, jids: &[String]| {
            jids.iter().fold(Element::new(name, NS), |el, j| {
                el.with_child(Element::new("jid", NS).with_text(j.clone()))
            })
        };
        Element::new("prefs", NS)
            .with_attr("default", self.default.as_str())
            .with_child(list("always", &self.always))
            .with_child(list("never", &self.never))
    }

    /// Whether a message with `with` (its bare JID, and full JID when it has one) is
    /// archived; `in_roster` is asked only for the `roster` default.
    pub fn archives(&self, with: &With, in_roster: impl FnOnce() -> bool) -> bool {
        let listed = |list: &[String]| list.iter().any(|j| with.is(j));
        if listed(&self.never) {
            return false;
        }
        if listed(&self.always) {
            return true;
        }
        match self.default {
            Default::Always => true,
            Default::Never => false,
            Default::Roster => in_roster(),
        }
    }

    /// The lists as stored: one JID per line.
    pub fn lines(jids: &[String]) -> String {
        jids.join("\n")
    }

    /// The lists as read back from storage.
    pub fn from_lines(s: &str) -> Vec<String> {
        s.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests;
