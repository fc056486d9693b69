//! The node-link wire protocol.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of postcard-encoded
//! [`Frame`]. Every frame carries the protocol version, and a link starts with the handshake
//! ([`Body::Hello`], [`Body::Welcome`], [`Body::Proof`], see [`crate::auth`]) so that a peer
//! speaking another version, or one without the cluster secret, is refused before any of its
//! frames is acted on. Frames are bounded in size (a smaller bound while the handshake runs);
//! a peer that announces a larger one is cut off rather than buffered.

use parley_user::{SyncDepth, UserWire};
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Bump it on any incompatible change of [`Body`].
pub const PROTOCOL_VERSION: u16 = 8;

/// Largest accepted frame body by default (`cluster.max_frame_bytes`): a maximal stanza
/// (256 KiB by default) plus ample headroom.
pub const MAX_FRAME: usize = 4 << 20;

/// Largest frame accepted before the handshake completes: a handshake frame is a few hundred
/// bytes, so an unauthenticated peer cannot make a node buffer more than this.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// Length of the handshake nonces.
pub const NONCE_LEN: usize = 32;

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
    /// First frame on a link, from the connecting node.
    Hello {
        /// The sender's node id.
        node: String,
        /// Its software version, for logs.
        software: String,
        /// A fresh random nonce for this connection.
        nonce: [u8; NONCE_LEN],
    },
    /// The accepting node's answer to [`Body::Hello`].
    Welcome {
        /// The acceptor's node id (the connector checks it is the node it meant to reach).
        node: String,
        /// The acceptor's fresh random nonce.
        nonce: [u8; NONCE_LEN],
        /// The acceptor's HMAC proof of the cluster secret over both nonces and ids (empty
        /// when the cluster relies on mutual TLS alone).
        proof: Vec<u8>,
    },
    /// The connector's proof of the cluster secret; after it, frames flow.
    Proof {
        /// HMAC over both nonces and ids with the connector's label (empty with mutual TLS
        /// alone).
        proof: Vec<u8>,
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
    /// One stanza for several sessions on the receiving node (a chat room's message to its
    /// occupants there): each gets a copy addressed to its JID, checked against its session
    /// id as for [`Body::ToSession`]. Serialized XML in `jabber:client`, without `to`.
    ToSessions {
        /// Each session's full JID and id on the receiving node.
        targets: Vec<(String, u64)>,
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
        /// Correlates the answer: random, so that no other node can guess it.
        id: u128,
        /// What is asked, as JSON (the admin layer's query).
        what: String,
    },
    /// A BOSH request for a session the receiver owns (XEP-0124 body, as received by the
    /// sender); answered with [`Body::BoshResponse`] carrying the same id.
    BoshRequest {
        /// Correlates the answer: random, so that no other node can guess it.
        id: u128,
        /// The request's `<body/>`.
        body: String,
    },
    /// Answer to [`Body::BoshRequest`].
    BoshResponse {
        /// The request's id.
        id: u128,
        /// The answer's `<body/>`.
        body: String,
    },
    /// Answer to [`Body::Query`], as JSON.
    Answer {
        /// The query's id.
        id: u128,
        /// The answer.
        json: String,
    },
    /// RFC 6120 §10.1: answered with [`Body::Synced`] once the receiver has done what
    /// `depth` says for `users`, behind every frame the sender queued before this one
    /// (parley-user's `order.rs`).
    Sync {
        /// Correlates the answer: random, so that no other node can guess it.
        id: u128,
        /// The users' bare JIDs (at most [`parley_user::MAX_SYNC_USERS`]).
        users: Vec<String>,
        /// How far it reaches.
        depth: SyncDepth,
    },
    /// Answer to [`Body::Sync`].
    Synced {
        /// The request's id.
        id: u128,
    },
    /// Keep-alive; answered with [`Body::Pong`] with the same number.
    Ping(u64),
    /// Answer to [`Body::Ping`].
    Pong(u64),
    /// A client resumed (XEP-0198 §5) on the sender a session the receiver may hold:
    /// asks for its state; answered with [`Body::ResumeState`] carrying the same id.
    ResumeTake {
        /// Correlates the answer: random, so that no other node can guess it.
        id: u128,
        /// The session's Stream Management id.
        previd: String,
        /// The user who authenticated on the resuming stream.
        user: String,
    },
    /// Answer to [`Body::ResumeTake`]: the session's state (the session crate's encoding),
    /// empty when the receiver had none to give.
    ResumeState {
        /// The request's id.
        id: u128,
        /// The state.
        state: Vec<u8>,
    },
    /// The sender took (or, `ok` false, gave up taking) the session it asked for.
    ResumeCommit {
        /// The session's Stream Management id.
        previd: String,
        /// Whether the claim moved to the sender.
        ok: bool,
    },
    /// A stanza for a domain the cluster does not serve, for the receiver, which owns the
    /// outgoing server-to-server stream to that domain (rendezvous placement). Serialized
    /// XML in `jabber:client`.
    ToDomain {
        /// The stanza.
        xml: String,
    },
    /// A stanza for a multi-user chat room (XEP-0045) or its service, for the receiver,
    /// which owns the room (rendezvous placement). Serialized XML in `jabber:client`.
    ToRoom {
        /// The stanza.
        xml: String,
    },
    /// The sender handed a room off to the receiver and finished writing its state: the
    /// receiver reads it again.
    RoomReload {
        /// The room's bare JID.
        room: String,
    },
    /// The admin API acts on a room the receiver owns.
    RoomControl {
        /// The room's bare JID.
        room: String,
        /// What to do (the room service's encoding).
        op: String,
    },
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

/// Encodes a frame with its length prefix (bounded by [`MAX_FRAME`]).
pub fn encode(body: &Body) -> Result<Vec<u8>, LinkError> {
    encode_bounded(body, MAX_FRAME)
}

/// Encodes a frame with its length prefix; refused when its body is larger than `max`.
pub fn encode_bounded(body: &Body, max: usize) -> Result<Vec<u8>, LinkError> {
    let frame = Frame {
        version: PROTOCOL_VERSION,
        body: body.clone(),
    };
    let payload = postcard::to_stdvec(&frame).map_err(|e| LinkError::Malformed(e.to_string()))?;
    if payload.len() > max {
        return Err(LinkError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes one encoded frame (length prefix included), e.g. a queued frame handed back.
pub fn decode_one(bytes: &[u8]) -> Result<Body, LinkError> {
    let mut d = Decoder::with_limit(bytes.len());
    d.feed(bytes);
    d.next_frame()?
        .ok_or_else(|| LinkError::Malformed("truncated frame".into()))
}

/// Incremental decoder: feed bytes as they arrive, take frames as they complete. It never
/// holds more than one frame bound plus what one read brought.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::with_limit(MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder that refuses frames larger than `max` bytes.
    pub fn with_limit(max: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            max,
        }
    }

    /// Changes the frame bound (raised once the handshake is done).
    pub fn set_limit(&mut self, max: usize) {
        self.max = max;
    }

    /// Bytes buffered and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

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
        if len > self.max {
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
                nonce: [7; NONCE_LEN],
            },
            Body::Welcome {
                node: "n2".into(),
                nonce: [9; NONCE_LEN],
                proof: vec![1, 2, 3],
            },
            Body::Proof {
                proof: vec![4, 5, 6],
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
                id: u128::MAX - 4,
                what: "{}".into(),
            },
            Body::Answer {
                id: u128::MAX - 4,
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
            Body::Sync {
                id: 6,
                users: vec!["alice@localhost".into()],
                depth: SyncDepth::Barrier {
                    origin: "n1".into(),
                },
            },
            Body::Sync {
                id: 7,
                users: vec![],
                depth: SyncDepth::Link,
            },
            Body::Synced { id: 6 },
            Body::Ping(3),
            Body::Pong(3),
        ]
    }

    /// The node-link fuzz target's seeds speak this protocol version: otherwise every seed
    /// stops at the version check and the fuzzer starts far from the frames' bodies. After
    /// a change of [`Body`], run `cargo run --example make_seeds` in `fuzz/`.
    #[test]
    fn the_fuzz_seeds_speak_the_current_protocol() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/node_link");
        let mut decoded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("frame_")
            {
                continue;
            }
            let seed = std::fs::read(&path).unwrap();
            // The cut header: a count, then two bytes per cut.
            let payload = &seed[1 + 2 * usize::from(seed[0])..];
            decode_one(payload).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            decoded += 1;
        }
        assert!(decoded >= 20, "{decoded} seeds in {}", dir.display());
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
    fn the_handshake_bound_refuses_what_the_frame_bound_would_take() {
        let big = Body::Proof {
            proof: vec![0; 4096],
        };
        let mut d = Decoder::with_limit(HANDSHAKE_MAX_FRAME);
        d.feed(&encode(&big).unwrap());
        assert!(matches!(d.next_frame(), Err(LinkError::TooLarge(_))));
        assert_eq!(decode_one(&encode(&big).unwrap()), Ok(big.clone()));
        assert!(matches!(
            encode_bounded(&big, 100),
            Err(LinkError::TooLarge(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut d = Decoder::default();
        d.feed(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_frame(), Err(LinkError::Malformed(_))));
    }
}
