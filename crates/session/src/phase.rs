//! Where a session is in its life, as types: the negotiation phase (RFC 6120 §4–§7), the
//! SASL exchange in progress, the bound resource, and whether a stream header was received.
//!
//! Each phase carries only the state that exists in it: SASL counters live in [`Unauthed`],
//! the bound resource in [`Bound`], so that a bound session cannot hold a half-finished
//! SASL exchange and an unauthenticated one cannot hold a resource.

use std::fmt;

use jid::{BareJid, FullJid};
use parley_proto::sasl::{ScramHash, ScramServer};
use parley_router::SessionFlags;
use parley_user::{AttachState, UserLink};
use parley_xml::Element;

/// Stanzas a new session holds back until its blocklist arrives; past this, they are
/// refused with `resource-constraint` (never delivered unchecked, never queued without
/// bound).
pub const HELD_BACK_MAX: usize = 256;

/// Prosody's `session.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// A client connection that has not authenticated.
    C2sUnauthed,
    /// An authenticated client connection.
    C2s,
    /// An external component (XEP-0114) that has not completed its handshake.
    ComponentUnauthed,
    /// An external component serving its domain.
    Component,
    /// A stream between servers (either way) that has proved no domain yet.
    S2sUnauthed,
    /// A stream between servers that proved a domain (dialback).
    S2s,
}

impl SessionType {
    /// The name Prosody uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::C2sUnauthed => "c2s_unauthed",
            SessionType::C2s => "c2s",
            SessionType::ComponentUnauthed => "component_unauthed",
            SessionType::Component => "component",
            SessionType::S2sUnauthed => "s2s_unauthed",
            SessionType::S2s => "s2s",
        }
    }
}

/// Where a session is in its negotiation.
#[derive(Debug)]
pub enum Phase {
    /// Before SASL success (TLS may or may not be up).
    Unauthed(Unauthed),
    /// SASL succeeded; waiting for the stream restart and a resource bind.
    Authed {
        /// The authenticated user's bare JID.
        user: BareJid,
    },
    /// A resource is bound and routable.
    Bound(Bound),
    /// The client has sent initial presence.
    Established(Bound),
    /// An external component's connection (XEP-0114), not a client's.
    Component(crate::component::ComponentPhase),
    /// A stream another server opened to us.
    S2sIn(crate::s2s::S2sInPhase),
    /// A stream we opened to another server.
    S2sOut(Box<crate::s2s::S2sOut>),
}

impl Phase {
    /// `<proceed/>` is queued on a stream that takes STARTTLS as the server.
    pub(crate) fn tls_proceeding(&self) -> bool {
        match self {
            Phase::Unauthed(u) => u.starttls == StartTls::Proceeding,
            Phase::S2sIn(crate::s2s::S2sInPhase::Open(s)) => s.starttls == StartTls::Proceeding,
            _ => false,
        }
    }

    /// The TLS handshake has started: the STARTTLS step is over.
    pub(crate) fn tls_started(&mut self) {
        match self {
            Phase::Unauthed(u) => u.starttls = StartTls::Idle,
            Phase::S2sIn(crate::s2s::S2sInPhase::Open(s)) => s.starttls = StartTls::Idle,
            _ => {}
        }
    }
}

/// State before authentication.
#[derive(Debug, Default)]
pub struct Unauthed {
    /// Failed SASL exchanges (RFC 6120 §6.4.5: a bounded number of retries).
    pub(crate) failures: u32,
    /// SASL exchanges started (`<auth/>` elements), whatever became of them.
    pub(crate) auths: u32,
    pub(crate) sasl: SaslState,
    /// Where STARTTLS is: only this phase has the step, so a TLS start after
    /// authentication cannot be written.
    pub(crate) starttls: StartTls,
    /// The mechanism of the SASL exchange under way, for the session's record.
    pub(crate) mechanism: Option<&'static str>,
    /// Registration iqs received (XEP-0077; bounded by `signup::MAX_REQUESTS`).
    pub(crate) signup_requests: u32,
    /// The hash of the invitation the client showed (XEP-0445 `<preauth/>`), live when
    /// shown; its use is taken when the account is created.
    pub(crate) invite: Option<String>,
}

/// STARTTLS (RFC 6120 §5.4) as far as the session is concerned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartTls {
    /// Not asked for (or done: the connection is TLS now).
    #[default]
    Idle,
    /// `<proceed/>` is queued; the handshake starts once it is flushed.
    Proceeding,
}

/// The SASL exchange in progress (RFC 6120 §6.4).
#[derive(Default)]
pub(crate) enum SaslState {
    #[default]
    Idle,
    /// `<auth/>` for SCRAM arrived without an initial response; the client-first message
    /// follows in `<response/>`.
    ScramAwaitingFirst {
        server: ScramServer,
        hash: ScramHash,
    },
    /// Server-first sent; waiting for client-final. `user` is None for a username that is no
    /// valid localpart: such an exchange runs on fake credentials and can only fail.
    ScramAwaitingFinal {
        server: ScramServer,
        user: Option<BareJid>,
    },
    /// A storage lookup or password check is under way; input is paused.
    Pending,
    /// RFC 7628 §3.2.2: the error challenge was sent; the client's `\x01` ends it.
    OAuthFailed,
}

impl fmt::Debug for SaslState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The SCRAM state holds nonces and keys: only the name of the state is shown.
        f.write_str(match self {
            SaslState::Idle => "Idle",
            SaslState::ScramAwaitingFirst { .. } => "ScramAwaitingFirst",
            SaslState::ScramAwaitingFinal { .. } => "ScramAwaitingFinal",
            SaslState::Pending => "Pending",
            SaslState::OAuthFailed => "OAuthFailed",
        })
    }
}

/// State of a bound resource: the Prosody fields `full_jid`, `priority`, `presence`,
/// `interested`. The user actor holds the authoritative copy for routing; these mirror it for
/// this session's own view.
#[derive(Debug)]
pub struct Bound {
    /// The bound full JID.
    pub jid: FullJid,
    /// The user's actor.
    pub user: UserLink,
    /// Whether the user actor has been told that this resource is gone.
    pub detached: bool,
    /// Presence priority (RFC 6121 §4.7.2.3).
    pub priority: i8,
    /// The last presence broadcast by the client.
    pub presence: Option<Element>,
    /// Whether the client has asked for its roster.
    pub interested: bool,
    /// Whether the client enabled XEP-0280 carbons.
    pub carbons: bool,
    /// XEP-0191: the user's blocklist, as its user actor pushed it here.
    pub blocked: parley_proto::blocking::Blocklist,
    /// Whether the client asked for the blocklist, and so gets the pushes (§3.3).
    pub blocklist_requested: bool,
    /// Whether the user actor's copy of the blocklist has arrived; until then stanzas
    /// from other sessions wait in `held_back`, so that none slips past the list.
    pub blocklist_synced: bool,
    /// Stanzas that arrived before the blocklist (bounded by `HELD_BACK_MAX`).
    pub held_back: Vec<Element>,
    /// Where the client sent directed presence that is still on (RFC 6121 §4.6), so that a
    /// user actor that takes over on another node knows whom to tell when it goes.
    pub directed: Vec<String>,
    /// Stream Management (XEP-0198): only a bound resource has it.
    pub(crate) sm: crate::sm::Sm,
    /// Client State Indication (XEP-0352).
    pub(crate) csi: crate::csi::Csi,
    /// Iqs a legacy bookmarks write (XEP-0411) or a vCard photo (XEP-0398) sent to the
    /// account's PEP service, not answered yet.
    pub(crate) pep_syncs: u32,
}

impl Bound {
    /// A resource just bound: no presence yet, nothing asked for, blocklist not synced.
    pub(crate) fn new(jid: FullJid, user: UserLink) -> Bound {
        Bound {
            jid,
            user,
            detached: false,
            priority: 0,
            presence: None,
            interested: false,
            carbons: false,
            blocked: Default::default(),
            blocklist_requested: false,
            blocklist_synced: false,
            held_back: Vec::new(),
            directed: Vec::new(),
            sm: crate::sm::Sm::Off,
            csi: crate::csi::Csi::Active,
            pep_syncs: 0,
        }
    }

    /// What other nodes route by.
    pub fn flags(&self) -> SessionFlags {
        SessionFlags {
            priority: self.priority,
            available: self.presence.is_some(),
            interested: self.interested,
            carbons: self.carbons,
        }
    }

    /// The state a user actor needs when this resource attaches (again).
    pub(crate) fn attach_state(&self) -> AttachState {
        AttachState {
            available: self.presence.is_some(),
            priority: self.priority,
            presence: self.presence.clone(),
            interested: self.interested,
            carbons: self.carbons,
            directed: self.directed.clone(),
        }
    }
}

/// Whether a client stream header has been received (Prosody's `notopen`).
#[derive(Debug)]
pub(crate) enum StreamState {
    AwaitingHeader,
    Open { host: String },
}

/// How a session ended, for logs and the session lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The client closed its stream.
    Ended,
    /// The connection was lost without a close.
    Abandoned,
    /// Another session took the resource.
    Replaced,
    /// The server closed the stream with this condition.
    Error(parley_proto::stream_error::StreamCondition),
    /// The server closed the stream without an error.
    Closed,
    /// The client resumed the session on another connection (XEP-0198 §5): the session
    /// goes on there, with its record.
    Resumed,
}
