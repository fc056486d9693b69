//! The I/O driver: an actor future polled on the session's own task.
//!
//! It writes the outbound queue, reads into a per-thread scratch buffer and feeds the
//! parser, so an idle session holds no read buffer at all and costs no task of its own.
//! Messages from other actors append to the queue and wake it.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{self, Poll};

use actix::fut::ActorFuture;
use actix::Context;
use parley_proto::ns;
use parley_proto::stream_error::StreamError;
use parley_router::CloseReason;
use parley_xml::Event;
use tokio::io::ReadBuf;
use tracing::debug;

use crate::phase::{EndCause, StreamState};
use crate::session::Session;

thread_local! {
    /// Scratch space for reads. Data is handed to the parser at once, so one buffer per thread
    /// serves every session on it.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; 16 * 1024].into_boxed_slice());
}

/// Reads handled in one poll before the driver yields to other sessions on the thread.
const READ_BUDGET: usize = 16;

/// The I/O state of the connection. A TLS start is not one of them: it is a step of the
/// unauthenticated phase ([`StartTls`]), so that it cannot be written for a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    Running,
    /// The closing tag is queued; flush, shut the write side, then wait for the client.
    Closing(CloseStage),
    /// The connection died under Stream Management with resumption (XEP-0198 §5): no
    /// connection; stanzas wait in the unacknowledged queue until the client resumes or
    /// the timer (this handle) ends the session.
    Hibernating(actix::SpawnHandle),
    /// The client resumed on another connection, and this actor handed the session over:
    /// what still arrives here goes on to the successor until the actor stops.
    Moved,
    /// The session's state went to another node that the client resumed on; until that
    /// node commits (or the timer runs out), stanzas are kept after the first `exported`
    /// of the queue (see `remote.rs`).
    Exporting {
        timer: actix::SpawnHandle,
        exported: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseStage {
    Flushing,
    ShuttingDown,
    Draining,
}

/// The actor future that drives a session's I/O.
pub(crate) struct Driver;

impl ActorFuture<Session> for Driver {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Session,
        ctx: &mut Context<Session>,
        task: &mut task::Context<'_>,
    ) -> Poll<()> {
        act.drive(ctx, task)
    }
}

impl Session {
    fn drive(&mut self, ctx: &mut Context<Self>, task: &mut task::Context<'_>) -> Poll<()> {
        if !self
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(task.waker()))
        {
            self.waker = Some(task.waker().clone());
        }
        let mut reads = 0;
        loop {
            if let Some(done) = self.write_step(ctx, task) {
                return done;
            }
            if self.running() {
                self.process_events(ctx);
                if !self.running() {
                    continue;
                }
                if self.paused || self.fenced || self.outbox.input_paused() {
                    // No more input while an asynchronous step runs, or while the client
                    // does not take what it is sent: the write above is registered for
                    // writability and wakes this driver again.
                    return Poll::Pending;
                }
            }
            if reads == READ_BUDGET {
                task.waker().wake_by_ref();
                return Poll::Pending;
            }
            let Some(allowed) = self.read_allowance(ctx) else {
                // Over the read rate: a timer wakes the driver when tokens are back.
                return Poll::Pending;
            };
            reads += 1;
            if let Some(done) = self.read_step(ctx, task, allowed) {
                return done;
            }
        }
    }

    /// Output first, so that answers to what was just read go out before more is read;
    /// then the step of a TLS start or a close that the flushed output allows. Some(result)
    /// when the driver returns (waits for a wake-up, or the session is over).
    fn write_step(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut task::Context<'_>,
    ) -> Option<Poll<()>> {
        while !self.outbox.is_empty() {
            let written = if self.framed {
                let unit = self.outbox.front_kind();
                self.conn
                    .poll_write_unit(task, unit, self.outbox.front_unit())
            } else {
                self.conn.poll_write(task, self.outbox.front())
            };
            match written {
                Poll::Ready(Ok(0)) => {
                    return Some(self.lost(ctx, "connection closed while writing"))
                }
                Poll::Ready(Ok(n)) => self.outbox.consume(n),
                Poll::Ready(Err(e)) => return Some(self.lost(ctx, &e.to_string())),
                Poll::Pending => break,
            }
        }
        let flushed = self.outbox.is_empty()
            && match self.conn.poll_flush(task) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => return Some(self.lost(ctx, &e.to_string())),
                Poll::Pending => false,
            };
        match self.io {
            Io::Running if !self.starting_tls() => None,
            Io::Running | Io::Closing(CloseStage::Flushing) if !flushed => Some(Poll::Pending),
            Io::Running => {
                if let Err(e) = self.conn.start_tls() {
                    return Some(self.lost(ctx, &format!("starting TLS: {e}")));
                }
                // RFC 6120 §5.4.3.3: nothing sent before the handshake counts.
                self.parser.reset();
                self.stream = StreamState::AwaitingHeader;
                self.phase.tls_started();
                None
            }
            Io::Closing(CloseStage::Draining) => None,
            // Nothing to drive: the connection is gone.
            Io::Hibernating(_) | Io::Moved | Io::Exporting { .. } => Some(Poll::Ready(())),
            Io::Closing(CloseStage::Flushing) => {
                self.io = Io::Closing(CloseStage::ShuttingDown);
                self.shut_down(task)
            }
            Io::Closing(CloseStage::ShuttingDown) => self.shut_down(task),
        }
    }

    /// Shuts the write side down once the close is flushed; None once it is (then the
    /// driver drains the client's side).
    fn shut_down(&mut self, task: &mut task::Context<'_>) -> Option<Poll<()>> {
        match self.conn.poll_shutdown(task) {
            Poll::Ready(_) => {
                self.io = Io::Closing(CloseStage::Draining);
                None
            }
            Poll::Pending => Some(Poll::Pending),
        }
    }

    /// One read of at most `allowed` bytes into the parser (discarded while draining after
    /// a close). Some(result) when the driver returns.
    fn read_step(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut task::Context<'_>,
        allowed: usize,
    ) -> Option<Poll<()>> {
        let draining = self.io == Io::Closing(CloseStage::Draining);
        let parser = &mut self.parser;
        let conn = &mut self.conn;
        let read = READ_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let cap = allowed.min(buf.len());
            let mut rb = ReadBuf::new(&mut buf[..cap]);
            match conn.poll_read(task, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Ok(0)),
                Poll::Ready(Ok(())) => {
                    if !draining {
                        parser.feed(rb.filled());
                    }
                    Poll::Ready(Ok(rb.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        });
        let why = match read {
            Poll::Pending => return Some(Poll::Pending),
            Poll::Ready(Ok(n)) if n > 0 => {
                self.shaper.consumed(n);
                self.reads = self.reads.wrapping_add(1);
                return None;
            }
            Poll::Ready(Ok(_)) => "connection closed by peer without </stream:stream>".to_owned(),
            Poll::Ready(Err(e)) => e.to_string(),
        };
        if draining {
            // The client closed its side after ours: the close is complete.
            self.finish(ctx);
            return Some(Poll::Ready(()));
        }
        Some(self.lost(ctx, &why))
    }

    /// The connection is gone without a proper close. A resumable session hibernates
    /// (XEP-0198 §5); any other ends.
    pub(crate) fn lost(&mut self, ctx: &mut Context<Self>, why: &str) -> Poll<()> {
        if self.io == Io::Running {
            {
                let _enter = self.span.enter();
                debug!(reason = why, "connection lost");
            }
            if self.hibernate(ctx) {
                return Poll::Ready(());
            }
            self.end.get_or_insert(EndCause::Abandoned);
        }
        self.outbox.clear();
        self.finish(ctx);
        Poll::Ready(())
    }

    fn process_events(&mut self, ctx: &mut Context<Self>) {
        // Input whose answers cannot be queued waits in the parser (bounded by what was read).
        while self.running() && !self.paused && !self.fenced && !self.outbox.input_paused() {
            match self.parser.next_event() {
                Ok(Some(Event::StreamOpen(header))) => self.on_stream_open(header, ctx),
                Ok(Some(Event::Stanza(el))) if self.framed && el.ns() == ns::FRAMING => {
                    self.on_framing(el, ctx)
                }
                Ok(Some(Event::Stanza(el))) => self.on_element(el, ctx),
                Ok(Some(Event::StreamClose)) => {
                    self.end = Some(EndCause::Ended);
                    if !self.close_after_archiving(ctx) {
                        self.close(CloseReason::Clean, ctx);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.close(StreamError::from(&e).into(), ctx);
                }
            }
        }
    }

    /// `<proceed/>` is queued (RFC 6120 §5.4.2.3): nothing more is read or written on the
    /// plain connection until the handshake starts.
    fn starting_tls(&self) -> bool {
        self.phase.tls_proceeding()
    }

    /// Input is processed and output written now: not closing, not starting TLS.
    pub(crate) fn running(&self) -> bool {
        self.io == Io::Running && !self.starting_tls()
    }

    /// Pauses input while an asynchronous step (a storage lookup) is under way.
    pub(crate) fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes input after [`pause`](Self::pause).
    pub(crate) fn resume(&mut self) {
        self.paused = false;
        self.wake();
    }

    /// Wakes the driver: output was queued, or input may go on.
    pub(crate) fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }
}
