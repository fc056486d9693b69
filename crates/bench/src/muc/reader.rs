//! The reading side of each occupant of the group chat benchmark: the board every reader
//! notes arrivals on, and the loop that reads one session (answering the server's iqs, and
//! passing join outcomes to the task driving the occupant).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_proto::ns;
use parley_xml::escape;
use parley_xml::Element;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;

use crate::client::{Incoming, SessionReader, SessionWriter};

const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_DELAY: &str = "urn:xmpp:delay";
/// Bodies of the benchmark's messages start with this, then the sequence number.
pub(super) const BODY_MARK: &str = "mb ";

/// What a reader tells the task driving its occupant.
#[derive(Debug)]
pub(super) enum Event {
    /// The self-presence (status 110); `created`: status 201, a new room.
    Joined { created: bool },
    /// A presence error from the room, with its condition.
    Refused(String),
    /// An answer to one of our iqs.
    Iq { id: String, ok: bool },
}

/// Arrivals of one message.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) sent_ns: AtomicU64,
    pub(super) last_ns: AtomicU64,
    pub(super) sum_us: AtomicU64,
    pub(super) count: AtomicU32,
}

/// What every reader writes to: arrivals per message, counters.
pub(super) struct Board {
    pub(super) t0: Instant,
    pub(super) slots: Vec<Slot>,
    pub(super) presences: AtomicU64,
    pub(super) message_errors: AtomicU64,
    pub(super) dropped: AtomicU64,
    /// Set before the generator closes its connections, so that they do not count as
    /// dropped.
    pub(super) closing: AtomicBool,
}

impl Board {
    pub(super) fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn arrived(&self, seq: usize) {
        let Some(slot) = self.slots.get(seq) else {
            return;
        };
        let now = self.now_ns();
        let sent = slot.sent_ns.load(Ordering::Acquire);
        slot.last_ns.fetch_max(now, Ordering::AcqRel);
        slot.sum_us
            .fetch_add(now.saturating_sub(sent) / 1000, Ordering::Relaxed);
        // Last: whoever sees the count complete also sees the latest arrival time.
        slot.count.fetch_add(1, Ordering::AcqRel);
    }
}

/// Reads everything one occupant receives until told to stop: notes the benchmark's
/// messages on the board, counts the room's presences, answers the server's iqs (a
/// server pings a silent client and drops it when no answer comes), and passes join
/// outcomes and iq answers to the task driving the occupant.
pub(super) async fn read_loop(
    mut r: SessionReader,
    room: String,
    board: Arc<Board>,
    writer: Arc<Mutex<SessionWriter>>,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let room_prefix = format!("{room}/");
    // Never reached: readers end on `stop` or on the connection's end.
    let far = Instant::now() + Duration::from_secs(7 * 24 * 3600);
    loop {
        let item = tokio::select! {
            biased;
            _ = stop.changed() => return,
            item = r.recv(far) => item,
        };
        let el = match item {
            Ok(Incoming::Stanza(el)) => el,
            Ok(Incoming::Header(_)) => continue,
            Ok(Incoming::Close) | Ok(Incoming::Eof) | Err(_) => {
                if !board.closing.load(Ordering::Relaxed) {
                    board.dropped.fetch_add(1, Ordering::Relaxed);
                    eprintln!("muc: the server closed {}'s connection", r.jid);
                }
                return;
            }
        };
        let from = el.attr("from").unwrap_or_default();
        let from_room = from == room || from.starts_with(&room_prefix);
        match el.name() {
            "message" if from_room => on_message(&el, &board),
            "presence" if from_room => {
                if el.attr("type") == Some("error") {
                    let _ = events.send(Event::Refused(error_condition(&el)));
                    continue;
                }
                board.presences.fetch_add(1, Ordering::Relaxed);
                let codes = status_codes(&el);
                if codes.contains(&110) {
                    let _ = events.send(Event::Joined {
                        created: codes.contains(&201),
                    });
                }
            }
            "iq" => match el.attr("type") {
                Some("get") | Some("set") => {
                    let reply = iq_reply(&el);
                    if writer.lock().await.send(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Some(t) => {
                    let _ = events.send(Event::Iq {
                        id: el.attr("id").unwrap_or_default().to_owned(),
                        ok: t == "result",
                    });
                }
                None => {}
            },
            _ => {}
        }
    }
}

fn on_message(el: &Element, board: &Board) {
    if el.attr("type") == Some("error") {
        let n = board.message_errors.fetch_add(1, Ordering::Relaxed);
        if n < 3 {
            eprintln!("muc: error from the room: {}", error_condition(el));
        }
        return;
    }
    // History replayed on join (XEP-0203 delay): not a live delivery.
    if el.attr("type") != Some("groupchat") || el.has_child("delay", NS_DELAY) {
        return;
    }
    let Some(body) = el.get_child("body", ns::CLIENT) else {
        return;
    };
    let body = body.text();
    let Some(seq) = body
        .strip_prefix(BODY_MARK)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse::<usize>().ok())
    else {
        return;
    };
    board.arrived(seq);
}

/// The status codes of a room presence (§7.2, `<x xmlns='…muc#user'><status code=…/>`).
fn status_codes(el: &Element) -> Vec<u16> {
    el.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn error_condition(el: &Element) -> String {
    el.children()
        .find(|c| c.name() == "error")
        .and_then(|e| e.children().find(|c| c.name() != "text"))
        .map_or_else(|| "no condition".to_owned(), |c| c.name().to_owned())
}

/// The answer to an iq the server sent: a result for a ping (XEP-0199), otherwise
/// `service-unavailable`, which is what a client without the feature says.
fn iq_reply(el: &Element) -> String {
    let id = escape::attr(el.attr("id").unwrap_or_default()).into_owned();
    let to = el
        .attr("from")
        .map(|f| format!(" to='{}'", escape::attr(f)))
        .unwrap_or_default();
    if el.has_child("ping", "urn:xmpp:ping") {
        format!("<iq type='result' id='{id}'{to}/>")
    } else {
        format!(
            "<iq type='error' id='{id}'{to}><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn parse(xml: &str) -> Element {
        let wrapped = format!("<w xmlns='jabber:client'>{xml}</w>");
        Element::parse(wrapped.as_bytes(), &Limits::default())
            .unwrap()
            .first_child()
            .unwrap()
            .clone()
    }

    fn board(slots: usize) -> Board {
        Board {
            t0: Instant::now(),
            slots: (0..slots).map(|_| Slot::default()).collect(),
            presences: AtomicU64::new(0),
            message_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }
    }

    #[test]
    fn only_live_benchmark_messages_count() {
        let b = board(3);
        let live = "<message type='groupchat' from='r@c/n0'><body>mb 2</body></message>";
        on_message(&parse(live), &b);
        on_message(&parse(live), &b);
        let history = "<message type='groupchat' from='r@c/n0'><body>mb 1</body>\
                       <delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/></message>";
        on_message(&parse(history), &b);
        on_message(
            &parse("<message type='groupchat'><body>hello</body></message>"),
            &b,
        );
        on_message(
            &parse("<message type='groupchat'><body>mb 99</body></message>"),
            &b,
        );
        on_message(
            &parse("<message type='error'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"),
            &b,
        );
        let counts: Vec<u32> = b
            .slots
            .iter()
            .map(|s| s.count.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [0, 0, 2]);
        assert_eq!(b.message_errors.load(Ordering::Relaxed), 1);
        assert!(b.slots[2].last_ns.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn self_presence_codes_and_errors_are_read() {
        let p = parse(
            "<presence from='r@c/n0'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='owner' role='moderator'/><status code='110'/><status code='201'/></x></presence>",
        );
        assert_eq!(status_codes(&p), [110, 201]);
        let e = parse(
            "<presence type='error' from='r@c/n1'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
        );
        assert_eq!(error_condition(&e), "item-not-found");
    }

    #[test]
    fn server_pings_are_answered_and_other_iqs_refused() {
        let ping =
            parse("<iq type='get' id='p1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert_eq!(
            iq_reply(&ping),
            "<iq type='result' id='p1' to='localhost'/>"
        );
        let other = parse("<iq type='get' id='v&amp;1'><query xmlns='jabber:iq:version'/></iq>");
        let reply = iq_reply(&other);
        assert!(
            reply.starts_with("<iq type='error' id='v&amp;1'>"),
            "{reply}"
        );
        assert!(reply.contains("service-unavailable"));
    }
}
