//! Client State Indication (XEP-0352) on a bound session: while the client says it is
//! inactive (a phone with the screen off), what can wait is held here instead of waking
//! its radio, bounded in stanzas and bytes (`[c2s] csi_max_held`, `csi_max_held_bytes`;
//! past either, everything held goes out). The rules of what waits are pure
//! (`parley_proto::csi::urgency`); this file applies them.
//!
//! Held stanzas are not lost with the connection: when a resumable session hibernates, or
//! is taken over by a resuming client, they go into the Stream Management queue first;
//! when the session ends they are answered like any stanza that could not be delivered.

use actix::Context;
use parley_proto::csi::{self, Urgency};
use parley_proto::ns;
use parley_proto::stream_error::StreamCondition;
use parley_router::CloseReason;
use parley_xml::Element;

use crate::session::Session;

/// Whether the client is active (XEP-0352 §4), and what waits for it while it is not.
#[derive(Debug, Default)]
pub(crate) enum Csi {
    /// The default: everything goes out at once.
    #[default]
    Active,
    /// `<inactive/>`: what can wait is held, in order, with its size.
    Inactive {
        held: Vec<(Element, usize)>,
        bytes: usize,
    },
}

impl Session {
    /// `<active/>` or `<inactive/>` (XEP-0352 §4).
    pub(crate) fn on_csi(&mut self, el: Element, ctx: &mut Context<Self>) {
        match el.name() {
            "inactive" => {
                if let Some(b) = self.bound_mut() {
                    if matches!(b.csi, Csi::Active) {
                        b.csi = Csi::Inactive {
                            held: Vec::new(),
                            bytes: 0,
                        };
                    }
                }
            }
            "active" => {
                self.flush_csi(ctx);
                if let Some(b) = self.bound_mut() {
                    b.csi = Csi::Active;
                }
            }
            other => self.close(
                CloseReason::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    format!("<{other}/> is not a client state indication"),
                ),
                ctx,
            ),
        }
    }

    /// The last step of delivery to the client: now, or held while it is inactive.
    pub(crate) fn send_or_hold(&mut self, el: Element, ctx: &mut Context<Self>) {
        let (max_held, max_bytes) = (
            self.env.config.csi_max_held,
            self.env.config.csi_max_held_bytes,
        );
        let Some(b) = self.bound_mut() else {
            return self.send(&el, ctx);
        };
        let Csi::Inactive { held, bytes } = &mut b.csi else {
            return self.send(&el, ctx);
        };
        let replaces = match csi::urgency(&el) {
            Urgency::Now => {
                self.flush_csi(ctx);
                return self.send(&el, ctx);
            }
            Urgency::Presence(from) => Some(from),
            Urgency::Later => None,
        };
        if let Some(from) = replaces {
            // Only the latest presence of each sender matters to an inactive client.
            if let Some(i) = held.iter().position(|(h, _)| {
                h.name() == "presence"
                    && h.attr("from").unwrap_or("") == from
                    && matches!(h.attr("type"), None | Some("unavailable"))
            }) {
                let (_, size) = held.remove(i);
                *bytes -= size;
            }
        }
        let size = el.to_bytes_in(Some(ns::CLIENT)).len();
        held.push((el, size));
        *bytes += size;
        if held.len() > max_held || *bytes > max_bytes {
            self.flush_csi(ctx);
        }
    }

    /// Sends everything held, in order; the client stays as it said it is.
    pub(crate) fn flush_csi(&mut self, ctx: &mut Context<Self>) {
        let held = match self.bound_mut().map(|b| &mut b.csi) {
            Some(Csi::Inactive { held, bytes }) => {
                *bytes = 0;
                std::mem::take(held)
            }
            _ => return,
        };
        for (el, _) in held {
            self.send(&el, ctx);
        }
    }

    /// What was held when the session ends (answered as undeliverable by the caller).
    pub(crate) fn release_csi(&mut self) -> Vec<Element> {
        match self.bound_mut().map(|b| &mut b.csi) {
            Some(Csi::Inactive { held, bytes }) => {
                *bytes = 0;
                std::mem::take(held).into_iter().map(|(el, _)| el).collect()
            }
            _ => Vec::new(),
        }
    }
}
