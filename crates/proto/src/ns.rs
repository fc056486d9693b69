//! XML namespace names used on the wire.
//!
//! Kept in one place so that a typo in a namespace is a compile error rather
//! than a silently unmatched element.

/// Client-to-server content namespace (RFC 6120 §4.8.3).
pub const CLIENT: &str = "jabber:client";
/// Server-to-server content namespace (RFC 6120 §4.8.3).
pub const SERVER: &str = "jabber:server";
/// XEP-0114: the content namespace of a component's stream to the server.
pub const COMPONENT: &str = "jabber:component:accept";
/// Stream namespace, usually bound to the `stream:` prefix (RFC 6120 §4.8.1).
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// Stream error conditions (RFC 6120 §4.9.3).
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions (RFC 6120 §8.3.3).
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// STARTTLS negotiation (RFC 6120 §5).
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL negotiation (RFC 6120 §6).
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Legacy session establishment (RFC 3921 §3, kept for old clients).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Stream Management (XEP-0198), version 3.
pub const SM: &str = crate::sm::NS;
/// XMPP Ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0054 vCard-temp (also the storage key of an account's vCard).
pub const VCARD: &str = "vcard-temp";
/// XEP-0012 last activity.
pub const LAST: &str = "jabber:iq:last";
/// XEP-0202 entity time.
pub const TIME: &str = "urn:xmpp:time";
/// Service Discovery information (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service Discovery items (XEP-0030).
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Stream Limits Advertisement (XEP-0478).
pub const STREAM_LIMITS: &str = "urn:xmpp:stream-limits:0";
/// SASL Channel-Binding Type Capability (XEP-0440).
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// Roster management (RFC 6121 §2).
pub const ROSTER: &str = "jabber:iq:roster";
/// RFC 6121 §2.6.1: the roster-versioning stream feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
/// Software Version (XEP-0092).
pub const VERSION: &str = "jabber:iq:version";
/// WebSocket framing (RFC 7395).
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// Message Carbons (XEP-0280).
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// Delayed Delivery (XEP-0203).
pub const DELAY: &str = "urn:xmpp:delay";
/// Stanza Forwarding (XEP-0297).
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// Message Processing Hints (XEP-0334).
pub const HINTS: &str = "urn:xmpp:hints";
/// Blocking Command (XEP-0191).
pub const BLOCKING: &str = "urn:xmpp:blocking";
/// Blocking Command's application-specific error condition (XEP-0191 §3.6).
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// The namespace implicitly bound to the `xml:` prefix (`xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// XEP-0004 data forms.
pub const DATA_FORMS: &str = "jabber:x:data";
