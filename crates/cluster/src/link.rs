//! The node-link wire protocol.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of postcard-encoded
//! [`Frame`]. Every frame carries the protocol version, and a link starts with [`Body::Hello`]
//! so that a peer speaking another version is refused at once with a clear error. Frames are
//! bounded in size; a peer that announces a larger one is cut off rather than buffered.

use parley_user::UserWire;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Bump it on any incompatible change of [`Body`].
pub const PROTOCOL_VERSION: u16 = 3;

/// Largest accepted frame body: a maximal stanza (256 KiB by default, configurable up to
/// this) plus headroom.
pub const MAX_FRAME: usize = 4 << 20;

/// One frame on a node link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// What it says.
    pub body: Body,
}

/// Why a session is closed from another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteClose {
    /// A stream error condition (its RFC 6120 name) with an optional text.
    Error {
        /// e.g. `conflict`, `system-shutdown`.
        condition: String,
        /// Human-readable text.
        text: Option<String>,
    },
    /// A clean `</stream:stream>`.
    Clean,
}

/// The messages nodes exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// First frame on a link, both ways.
    Hello {
        /// The sender's node id.
        node: String,
        /// Its software version, for logs.
        software: String,
    },
    /// A stanza for a session on the receiving node.
    /// The stanza is serialized XML in the `jabber:client` namespace.
    ToSession {
        /// The session's full JID.
        jid: String,
        /// Session id on the receiving node, so that a stanza for a replaced session is
        /// not handed to its successor.
        session: u64,
        /// The stanza.
        xml: String,
    },
    /// A message for a user's actor, which runs on the receiving node (it owns the user).
    ToUser {
        /// The user's bare JID.
        user: String,
        /// The message.
        msg: UserWire,
    },
    /// Close a session on the receiving node.
    Close {
        /// Its full JID.
        jid: String,
        /// Its id.
        session: u64,
        /// Why.
        reason: RemoteClose,
        /// The status the session ends with when an admin ends it (`revoked`, `removed`);
        /// None for an ordinary close.
        status: Option<String>,
    },
    /// Asks for the receiver's session records (admin API); answered with
    /// [`Body::Answer`] carrying the same id.
    Query {
        /// Correlates the answer.
        id: u64,
        /// What is asked, as JSON (the admin layer's query).
        what: String,
    },
    /// A BOSH request for a session the receiver owns (XEP-0124 body, as received by the
    /// sender); answered with [`Body::BoshResponse`] carrying the same id.
    BoshRequest {
        /// Correlates the answer.
        id: u64,
        /// The request's `<body/>`.
        body: String,
    },
    /// Answer to [`Body::BoshRequest`].
    BoshResponse {
        /// The request's id.
        id: u64,
        /// The answer's `<body/>`.
        body: String,
    },
    /// Answer to [`Body::Query`], as JSON.
    Answer {
        /// The query's id.
        id: u64,
        /// The answer.
        json: String,
    },
    /// Keep-alive; answered with [`Body::Pong`] with the same number.
    Ping(u64),
    /// Answer to [`Body::Ping`].
    Pong(u64),
}

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// The peer speaks another protocol version.
    #[error("node link protocol version {peer} is not ours ({PROTOCOL_VERSION})")]
    Version {
        /// The peer's version.
        peer: u16,
    },
    /// A frame larger than [`MAX_FRAME`] was announced.
    #[error("node link frame of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// The bytes are not a frame.
    #[error("malformed node link frame: {0}")]
    Malformed(String),
}

/// Encodes a frame with its length prefix.
pub fn encode(body: &Body) -> Result<Vec<u8>, LinkError> {
    let frame = Frame {
        version: PROTOCOL_VERSION,
        body: body.clone(),
    };
    let payload = postcard::to_stdvec(&frame).map_err(|e| LinkError::Malformed(e.to_string()))?;
    if payload.len() > MAX_FRAME {
        return Err(LinkError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Incremental decoder: feed bytes as they arrive, take frames as they complete.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame's body, if one has arrived. An error poisons the link: the
    /// caller closes it.
    pub fn next_frame(&mut self) -> Result<Option<Body>, LinkError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(LinkError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let frame: Result<Frame, _> = postcard::from_bytes(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        let frame = frame.map_err(|e| LinkError::Malformed(e.to_string()))?;
        if frame.version != PROTOCOL_VERSION {
            return Err(LinkError::Version {
                peer: frame.version,
            });
        }
        Ok(Some(frame.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Body> {
        vec![
            Body::Hello {
                node: "n1".into(),
                software: "0.1.0".into(),
            },
            Body::ToSession {
                jid: "a@b/c".into(),
                session: 7,
                xml: "<message xmlns='jabber:client' to='a@b/c'><body>é</body></message>".into(),
            },
            Body::ToUser {
                user: "a@b".into(),
                msg: UserWire::Inbound {
                    xml: "<presence xmlns='jabber:client'/>".into(),
                    start: false,
                },
            },
            Body::ToUser {
                user: "a@b".into(),
                msg: UserWire::Attach {
                    resource: "phone".into(),
                    session: 11,
                    state: parley_user::WireState {
                        available: true,
                        priority: -3,
                        presence: Some("<presence xmlns='jabber:client'/>".into()),
                        interested: true,
                        carbons: false,
                        directed: vec!["c@d/e".into()],
                    },
                },
            },
            Body::Close {
                jid: "a@b/c".into(),
                session: 9,
                reason: RemoteClose::Error {
                    condition: "conflict".into(),
                    text: Some("replaced".into()),
                },
                status: None,
            },
            Body::Query {
                id: 4,
                what: "{}".into(),
            },
            Body::Answer {
                id: 4,
                json: "[]".into(),
            },
            Body::BoshRequest {
                id: 5,
                body: "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='a.b'/>"
                    .into(),
            },
            Body::BoshResponse {
                id: 5,
                body: "<body xmlns='http://jabber.org/protocol/httpbind'/>".into(),
            },
            Body::Ping(3),
            Body::Pong(3),
        ]
    }

    #[test]
    fn frames_round_trip_even_when_cut_at_every_byte() {
        let bytes: Vec<u8> = sample().iter().flat_map(|b| encode(b).unwrap()).collect();
        for cut in 0..bytes.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            d.feed(&bytes[..cut]);
            while let Some(b) = d.next_frame().unwrap() {
                got.push(b);
            }
            d.feed(&bytes[cut..]);
            while let Some(b) = d.next_frame().unwrap() {
                got.push(b);
            }
            assert_eq!(got, sample(), "cut at {cut}");
        }
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let frame = Frame {
            version: PROTOCOL_VERSION + 1,
            body: Body::Ping(1),
        };
        let payload = postcard::to_stdvec(&frame).unwrap();
        let mut d = Decoder::default();
        d.feed(&(payload.len() as u32).to_be_bytes());
        d.feed(&payload);
        assert_eq!(
            d.next_frame(),
            Err(LinkError::Version {
                peer: PROTOCOL_VERSION + 1
            })
        );
    }

    #[test]
    fn oversized_frames_are_refused_before_they_are_buffered() {
        let mut d = Decoder::default();
        d.feed(&((MAX_FRAME as u32) + 1).to_be_bytes());
        assert_eq!(d.next_frame(), Err(LinkError::TooLarge(MAX_FRAME + 1)));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut d = Decoder::default();
        d.feed(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_frame(), Err(LinkError::Malformed(_))));
    }
}
