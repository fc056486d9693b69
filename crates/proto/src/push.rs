//! Push notifications (XEP-0357, `urn:xmpp:push:0`): a client's `<enable/>` and
//! `<disable/>` (§5, §6), and the notification the server publishes to the app server
//! (§7): a pubsub publish of a `<notification/>` with the XEP's summary form and the
//! publish-options the client gave. The message body is never in it.

use parley_xml::Element;

/// The namespace.
pub const NS: &str = "urn:xmpp:push:0";
/// The summary form's FORM_TYPE (§7).
pub const SUMMARY: &str = "urn:xmpp:push:summary";
const DATA: &str = "jabber:x:data";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// Longest app server JID or node accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 1023;
/// Largest publish-options form kept, in bytes of XML.
pub const MAX_OPTIONS_BYTES: usize = 4096;

/// A client's request (XEP-0357 §5, §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Push to `jid`'s `node`, with these publish-options (a `jabber:x:data` submit form,
    /// serialized), if any.
    Enable {
        jid: String,
        node: String,
        options: Option<String>,
    },
    /// Stop pushing to `jid` (one `node`, or all of them).
    Disable { jid: String, node: Option<String> },
}

/// Why a request is `bad-request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("enable and disable need the app server's jid")]
    NoJid,
    #[error("enable needs a node")]
    NoNode,
    #[error("the jid or node is too long")]
    TooLong,
    #[error("the publish-options form must be a jabber:x:data submit form of at most 4096 bytes")]
    BadOptions,
}

/// Reads `<enable/>` or `<disable/>` (the iq's payload).
pub fn parse(payload: &Element) -> Result<Request, RequestError> {
    let jid = payload
        .attr("jid")
        .filter(|j| !j.is_empty())
        .ok_or(RequestError::NoJid)?;
    let node = payload.attr("node").filter(|n| !n.is_empty());
    if jid.len() > MAX_FIELD_BYTES || node.is_some_and(|n| n.len() > MAX_FIELD_BYTES) {
        return Err(RequestError::TooLong);
    }
    match payload.name() {
        "enable" => {
            let node = node.ok_or(RequestError::NoNode)?;
            let options = match payload.get_child("x", DATA) {
                None => None,
                Some(x) => {
                    let xml = x.to_string();
                    if x.attr("type") != Some("submit") || xml.len() > MAX_OPTIONS_BYTES {
                        return Err(RequestError::BadOptions);
                    }
                    Some(xml)
                }
            };
            Ok(Request::Enable {
                jid: jid.to_owned(),
                node: node.to_owned(),
                options,
            })
        }
        _ => Ok(Request::Disable {
            jid: jid.to_owned(),
            node: node.map(str::to_owned),
        }),
    }
}

fn field(var: &str, value: &str) -> Element {
    Element::new("field", DATA)
        .with_attr("var", var)
        .with_child(Element::new("value", DATA).with_text(value))
}

/// The publish iq (§7) from `from` (the user's bare JID) to the app server `to`, for
/// `node`: the summary form with `count` messages since the last notification and the last
/// sender, and `options` (the enable form, already checked) as publish-options.
pub fn notification(
    id: &str,
    from: &str,
    to: &str,
    node: &str,
    count: u64,
    last_sender: Option<&str>,
    options: Option<Element>,
) -> Element {
    let mut summary = Element::new("x", DATA)
        .with_attr("type", "submit")
        .with_child(field("FORM_TYPE", SUMMARY).with_attr("type", "hidden"))
        .with_child(field("message-count", &count.to_string()));
    if let Some(sender) = last_sender {
        summary = summary.with_child(field("last-message-sender", sender));
    }
    let publish = Element::new("publish", PUBSUB)
        .with_attr("node", node)
        .with_child(
            Element::new("item", PUBSUB)
                .with_child(Element::new("notification", NS).with_child(summary)),
        );
    let mut pubsub = Element::new("pubsub", PUBSUB).with_child(publish);
    if let Some(options) = options {
        pubsub = pubsub.with_child(Element::new("publish-options", PUBSUB).with_child(options));
    }
    Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_child(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
    }

    /// XEP-0357 §5 and §6.
    #[test]
    fn xep0357_5_enable_and_disable_are_read() {
        let r = parse(&el("<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'>\
            <x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s</value></field></x></enable>"))
        .unwrap();
        let Request::Enable { jid, node, options } = r else {
            panic!()
        };
        assert_eq!((jid.as_str(), node.as_str()), ("push.example", "n1"));
        assert!(options.unwrap().contains("secret"));
        assert_eq!(
            parse(&el("<disable xmlns='urn:xmpp:push:0' jid='push.example'/>")).unwrap(),
            Request::Disable {
                jid: "push.example".into(),
                node: None
            }
        );
        assert_eq!(
            parse(&el("<enable xmlns='urn:xmpp:push:0' jid='push.example'/>")),
            Err(RequestError::NoNode)
        );
        assert_eq!(
            parse(&el("<enable xmlns='urn:xmpp:push:0' node='n'/>")),
            Err(RequestError::NoJid)
        );
        assert_eq!(
            parse(&el("<enable xmlns='urn:xmpp:push:0' jid='p' node='n'><x xmlns='jabber:x:data' type='form'/></enable>")),
            Err(RequestError::BadOptions)
        );
    }

    /// XEP-0357 §7: the summary, the options, never a body.
    #[test]
    fn xep0357_7_notification_carries_the_summary_and_options() {
        let options = el("<x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s</value></field></x>");
        let iq = notification(
            "p1",
            "alice@h",
            "push.example",
            "n1",
            3,
            Some("bob@h"),
            Some(options),
        );
        let xml = iq.to_string();
        assert!(
            xml.contains(SUMMARY) && xml.contains("message-count") && xml.contains(">3<"),
            "{xml}"
        );
        assert!(
            xml.contains("last-message-sender") && xml.contains("bob@h"),
            "{xml}"
        );
        assert!(
            xml.contains("publish-options") && xml.contains("secret"),
            "{xml}"
        );
        assert!(!xml.contains("body"), "{xml}");
    }
}
