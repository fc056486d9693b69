//! The road's unit tests: every route and every delivery failure, with in-memory seams — a
//! recording [`UserSink`], a fake [`Directory`] whose handles go to a recording
//! [`RemoteSessions`], a recording [`Foreign`] hook, and real session actors. Each test
//! waits on a message round trip with the session actors, never on the clock.

use parking_lot::Mutex;
use std::sync::{Arc, Weak};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};
use jid::{BareJid, FullJid, Jid, ResourcePart};
use parley_proto::ns;
use parley_proto::stanza_error::{StanzaCondition, StanzaError};
use parley_xml::{Element, Limits};

use super::*;
use crate::directory::{ClaimFuture, ClaimOutcome, Directory, SessionFlags};
use crate::handle::{Close, CloseReason, Deliver, PendingGauge, RemoteSessions};
use crate::table::{BindOutcome, ResourceConflict};

// ----- seams ----------------------------------------------------------------------------------

/// A session actor that keeps what it is given.
struct TestSession {
    pending: Arc<PendingGauge>,
    got: Vec<Element>,
    closed: Vec<CloseReason>,
}

impl Actor for TestSession {
    type Context = Context<Self>;
}

impl Handler<Deliver> for TestSession {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.pending.taken();
        self.got.push(msg.stanza);
    }
}

impl Handler<Close> for TestSession {
    type Result = ();
    fn handle(&mut self, msg: Close, _: &mut Context<Self>) {
        self.closed.push(msg.reason);
    }
}

/// A round trip: everything sent to the session before it has been handled.
#[derive(Message)]
#[rtype(result = "(Vec<Element>, Vec<CloseReason>)")]
struct Take;

impl Handler<Take> for TestSession {
    type Result = actix::MessageResult<Take>;
    fn handle(&mut self, _: Take, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult((
            std::mem::take(&mut self.got),
            std::mem::take(&mut self.closed),
        ))
    }
}

/// The user actors: records what reaches them, or refuses everything with a condition.
#[derive(Default)]
struct Users {
    got: Mutex<Vec<(BareJid, Element, Wake)>>,
    refuse: Option<StanzaCondition>,
}

impl UserSink for Users {
    fn to_user(&self, user: &BareJid, stanza: Element, wake: Wake) -> Result<(), Box<Refused>> {
        self.got.lock().push((user.clone(), stanza.clone(), wake));
        match self.refuse {
            Some(c) => Err(Refused::new(stanza, StanzaError::new(c))),
            None => Ok(()),
        }
    }
}

impl Users {
    fn take(&self) -> Vec<(BareJid, Element, Wake)> {
        std::mem::take(&mut self.got.lock())
    }
}

/// Another node's link: records deliveries, or refuses them with `refuse`.
#[derive(Default)]
struct Link {
    got: Mutex<Vec<(String, FullJid, SessionId, Element)>>,
    refuse: Option<DeliverError>,
}

impl RemoteSessions for Link {
    fn deliver(
        &self,
        node: &str,
        jid: &FullJid,
        session: SessionId,
        stanza: Element,
    ) -> Result<(), Box<Undelivered>> {
        if let Some(error) = self.refuse {
            return Err(Box::new(Undelivered { error, stanza }));
        }
        let entry = (node.to_owned(), jid.clone(), session, stanza);
        self.got.lock().push(entry);
        Ok(())
    }
    fn close(&self, _: &str, _: &FullJid, _: SessionId, _: CloseReason) {}
    fn alive(&self, _: &str) -> bool {
        true
    }
}

/// The cluster directory: `bob@example.org/remote` is bound on node-b as session 7.
struct Dir {
    link: Arc<Link>,
}

const REMOTE: SessionId = SessionId(7);

impl Directory for Dir {
    fn lookup(&self, jid: &FullJid) -> Option<SessionHandle> {
        (jid.as_str() == "bob@example.org/remote").then(|| {
            let link: Arc<dyn RemoteSessions> = self.link.clone();
            SessionHandle::remote(REMOTE, Arc::from("node-b"), jid.clone(), link)
        })
    }
    fn claim(&self, _: &FullJid, _: SessionId, _: ResourceConflict) -> ClaimFuture {
        Box::pin(async { ClaimOutcome::Won })
    }
    fn update(&self, _: &FullJid, _: SessionId, _: SessionFlags) {}
    fn release(&self, _: &FullJid, _: SessionId) {}
}

/// Server-to-server stand-in: records what it is given.
#[derive(Default)]
struct S2s {
    got: Mutex<Vec<(Jid, Element)>>,
}

impl Foreign for S2s {
    fn send(&self, to: &Jid, stanza: Element) -> Result<(), Box<Refused>> {
        self.got.lock().push((to.clone(), stanza));
        Ok(())
    }
}

// ----- helpers --------------------------------------------------------------------------------

struct World {
    router: Router,
    users: Arc<Users>,
    link: Arc<Link>,
}

fn world_with(users: Users, link: Link) -> World {
    let router = Router::new(["example.org".to_owned()]);
    let users = Arc::new(users);
    let sink: Weak<dyn UserSink> = Arc::downgrade(&(users.clone() as Arc<dyn UserSink>));
    router.set_user_sink(sink);
    let link = Arc::new(link);
    router.set_directory(Arc::new(Dir { link: link.clone() }));
    World {
        router,
        users,
        link,
    }
}

fn world() -> World {
    world_with(Users::default(), Link::default())
}

/// Starts a session actor and binds it to `jid`; `limit` stanzas may be in flight to it.
fn bind(router: &Router, jid: &str, id: u64, limit: usize) -> (Addr<TestSession>, SessionHandle) {
    let pending = PendingGauge::new(limit);
    let p = pending.clone();
    let addr = TestSession {
        pending: p,
        got: Vec::new(),
        closed: Vec::new(),
    }
    .start();
    let handle = SessionHandle::new(
        SessionId(id),
        addr.clone().recipient(),
        addr.clone().recipient(),
        pending,
    );
    bind_handle(router, jid, handle.clone());
    (addr, handle)
}

fn bind_handle(router: &Router, jid: &str, handle: SessionHandle) {
    let full = FullJid::new(jid).unwrap();
    let resource = ResourcePart::new(full.resource().as_str())
        .unwrap()
        .into_owned();
    let outcome = router.bind(
        &full.to_bare(),
        Some(&resource),
        handle,
        ResourceConflict::KickOld,
        || unreachable!("a resource is requested"),
    );
    assert!(matches!(outcome, BindOutcome::Bound { .. }));
}

/// A handle whose session has stopped: its mailbox is closed.
fn gone_handle(id: u64) -> SessionHandle {
    let ctx = Context::<TestSession>::new();
    let addr = ctx.address();
    drop(ctx);
    SessionHandle::new(
        SessionId(id),
        addr.clone().recipient(),
        addr.recipient(),
        PendingGauge::new(10),
    )
}

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
}

fn chat(from: &str, to: &str) -> Element {
    el(&format!(
        "<message xmlns='jabber:client' type='chat' from='{from}' to='{to}'><body>hi</body></message>"
    ))
}

/// The defined condition of an error stanza.
fn condition(stanza: &Element) -> Option<String> {
    assert_eq!(stanza.attr("type"), Some("error"), "not an error: {stanza}");
    let error = stanza.get_child("error", ns::CLIENT)?;
    error
        .children()
        .find(|c| c.ns() == ns::STANZA_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

async fn take(addr: &Addr<TestSession>) -> (Vec<Element>, Vec<CloseReason>) {
    addr.send(Take).await.unwrap()
}

const ALICE: &str = "alice@example.org/home";
const ME: Origin = Origin::Session(SessionId(1));

// ----- routes ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn rfc6121_8_5_3_1_a_full_jid_bound_here_goes_to_its_session() {
    let w = world();
    let (bob, _) = bind(&w.router, "bob@example.org/phone", 2, 10);
    let routed = w.router.route(chat(ALICE, "bob@example.org/phone"), ME);
    assert!(matches!(routed, Routed::Session));
    let (got, _) = take(&bob).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("to"), Some("bob@example.org/phone"));
    assert!(w.users.take().is_empty());
}

#[actix_rt::test]
async fn rfc6121_8_5_3_1_a_stanza_to_the_origin_session_comes_back_to_it() {
    let w = world();
    let (me, _) = bind(&w.router, ALICE, 1, 10);
    let routed = w.router.route(chat(ALICE, ALICE), ME);
    // Written by the session itself, in order: never through its own mailbox.
    let Routed::Loopback(back) = routed else {
        panic!("expected the stanza back, got {routed:?}");
    };
    assert_eq!(back.attr("to"), Some(ALICE));
    assert!(take(&me).await.0.is_empty());
}

#[actix_rt::test]
async fn rfc6121_8_5_3_1_a_full_jid_bound_on_another_node_goes_over_its_link() {
    let w = world();
    let routed = w.router.route(chat(ALICE, "bob@example.org/remote"), ME);
    assert!(matches!(routed, Routed::Session));
    let got = w.link.got.lock();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "node-b");
    assert_eq!(got[0].1.as_str(), "bob@example.org/remote");
    assert_eq!(got[0].2, REMOTE);
}

#[actix_rt::test]
async fn rfc6121_8_5_2_a_bare_jid_goes_to_the_user_actor() {
    let w = world();
    // Even with a session bound: the bare JID is the user actor's to route.
    let (bob, _) = bind(&w.router, "bob@example.org/phone", 2, 10);
    let routed = w.router.route(chat(ALICE, "bob@example.org"), ME);
    assert!(matches!(routed, Routed::User));
    let got = w.users.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_str(), "bob@example.org");
    assert_eq!(got[0].2, Wake::Start);
    assert!(take(&bob).await.0.is_empty());
}

#[actix_rt::test]
async fn rfc6121_8_5_3_2_a_full_jid_with_no_session_goes_to_the_user_actor() {
    let w = world();
    let iq = el(
        "<iq xmlns='jabber:client' type='get' id='1' from='alice@example.org/home' \
                 to='bob@example.org/nowhere'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let routed = w.router.route(iq, ME);
    // The user actor's §8.5.3.2.3 row answers, not the router.
    assert!(matches!(routed, Routed::User));
    let got = w.users.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_str(), "bob@example.org");
    assert_eq!(got[0].1.attr("to"), Some("bob@example.org/nowhere"));
}

#[actix_rt::test]
async fn rfc6120_8_3_3_19_what_reaches_the_server_domain_unanswered_is_refused_or_dropped() {
    let w = world();
    let routed = w.router.route(chat(ALICE, "example.org"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("service-unavailable"));
    assert_eq!(error.attr("to"), Some(ALICE));
    let presence = el(
        "<presence xmlns='jabber:client' from='alice@example.org/home' \
                       to='example.org'/>",
    );
    assert!(matches!(w.router.route(presence, ME), Routed::Dropped));
    assert!(w.users.take().is_empty());
}

#[actix_rt::test]
async fn rfc6120_10_4_3_a_foreign_domain_without_a_hook_is_remote_server_not_found() {
    let w = world();
    let routed = w.router.route(chat(ALICE, "carol@elsewhere.net"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(
        condition(&error).as_deref(),
        Some("remote-server-not-found")
    );
}

#[actix_rt::test]
async fn a_foreign_domain_goes_to_the_installed_hook() {
    let w = world();
    let s2s = Arc::new(S2s::default());
    w.router.set_foreign(s2s.clone());
    let routed = w.router.route(chat(ALICE, "carol@elsewhere.net/x"), ME);
    assert!(matches!(routed, Routed::Foreign));
    let got = s2s.got.lock();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_str(), "carol@elsewhere.net/x");
}

#[actix_rt::test]
async fn rfc6120_8_3_3_8_a_malformed_to_is_jid_malformed() {
    let w = world();
    let routed = w.router.route(chat(ALICE, "a@b@example.org"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("jid-malformed"));
}

// ----- delivery failures ----------------------------------------------------------------------

#[actix_rt::test]
async fn rfc6120_8_3_3_18_an_overloaded_session_gets_its_sender_resource_constraint() {
    let w = world();
    // No stanza may be in flight to bob: its actor is behind.
    let (bob, _) = bind(&w.router, "bob@example.org/phone", 2, 0);
    let routed = w.router.route(chat(ALICE, "bob@example.org/phone"), ME);
    // The refusal comes back to the origin session, to be written in order.
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("resource-constraint"));
    assert_eq!(error.attr("to"), Some(ALICE));
    let (got, closed) = take(&bob).await;
    assert!(got.is_empty());
    // Its actor is behind, which says nothing of its client: it is not closed (the outbox's
    // bounds close a client that does not read).
    assert!(closed.is_empty(), "{closed:?}");
}

#[actix_rt::test]
async fn rfc6120_8_3_3_18_an_overloaded_session_from_the_server_routes_the_error_to_the_sender() {
    let w = world();
    let (alice, _) = bind(&w.router, ALICE, 1, 10);
    let (_bob, bob) = bind(&w.router, "bob@example.org/phone", 2, 0);
    // A user actor delivering to its resource.
    w.router.deliver(&bob, chat(ALICE, "bob@example.org"));
    let (got, _) = take(&alice).await;
    assert_eq!(got.len(), 1);
    assert_eq!(condition(&got[0]).as_deref(), Some("resource-constraint"));
}

#[actix_rt::test]
async fn rfc6121_8_5_3_2_a_session_that_is_gone_hands_the_stanza_to_the_user_actor() {
    let w = world();
    bind_handle(&w.router, "bob@example.org/phone", gone_handle(2));
    let routed = w.router.route(chat(ALICE, "bob@example.org/phone"), ME);
    assert!(matches!(routed, Routed::User));
    // A user actor's delivery to a resource that is gone takes the same road.
    w.router
        .deliver(&gone_handle(3), chat(ALICE, "bob@example.org"));
    let got = w.users.take();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|(user, _, _)| user.as_str() == "bob@example.org"));
}

#[actix_rt::test]
async fn rfc6121_8_5_3_2_a_closing_session_gives_its_stanza_to_the_user_actor() {
    let w = world();
    w.router.gone(chat(ALICE, "bob@example.org/phone"));
    let got = w.users.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_str(), "bob@example.org");
}

#[actix_rt::test]
async fn rfc6120_8_3_3_18_a_congested_link_to_another_node_is_resource_constraint() {
    let w = world_with(
        Users::default(),
        Link {
            refuse: Some(DeliverError::Overloaded),
            ..Link::default()
        },
    );
    let routed = w.router.route(chat(ALICE, "bob@example.org/remote"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("resource-constraint"));
}

#[actix_rt::test]
async fn rfc6121_8_5_3_2_a_node_that_is_gone_hands_the_stanza_to_the_user_actor() {
    let w = world_with(
        Users::default(),
        Link {
            refuse: Some(DeliverError::Gone),
            ..Link::default()
        },
    );
    let routed = w.router.route(chat(ALICE, "bob@example.org/remote"), ME);
    assert!(matches!(routed, Routed::User));
    assert_eq!(w.users.take().len(), 1);
}

#[actix_rt::test]
async fn node_link_frames_reach_only_the_session_they_name() {
    let w = world();
    let (bob, _) = bind(&w.router, "bob@example.org/phone", 2, 10);
    let jid = FullJid::new("bob@example.org/phone").unwrap();
    w.router
        .to_local_session(&jid, SessionId(2), chat(ALICE, jid.as_str()));
    // A frame for a session that no longer owns the JID: §8.5.3.2.
    w.router
        .to_local_session(&jid, SessionId(99), chat(ALICE, jid.as_str()));
    assert_eq!(take(&bob).await.0.len(), 1);
    assert_eq!(w.users.take().len(), 1);
}

/// The handle of session `id` on node-c, through `w`'s link.
fn on_node_c(w: &World, jid: &FullJid, id: u64) -> SessionHandle {
    let link: Arc<dyn RemoteSessions> = w.link.clone();
    SessionHandle::remote(SessionId(id), Arc::from("node-c"), jid.clone(), link)
}

#[actix_rt::test]
async fn xep0198_5_what_still_comes_for_a_session_that_resumed_elsewhere_follows_it() {
    let w = world();
    let (bob, _) = bind(&w.router, "bob@example.org/phone", 2, 10);
    let jid = FullJid::new("bob@example.org/phone").unwrap();
    // Session 2 resumed on node-c; a peer whose registry still says "here" sends a frame,
    // and a session here routes by the full JID: both follow it, none to the user actor
    // (§8.5.3.2 would store a chat message offline, which a resumed client never sees).
    w.router.moved(&jid, SessionId(2), on_node_c(&w, &jid, 2));
    w.router
        .to_local_session(&jid, SessionId(2), chat(ALICE, jid.as_str()));
    let routed = w.router.route(chat(ALICE, jid.as_str()), ME);
    assert!(matches!(routed, Routed::Session));
    let got = std::mem::take(&mut *w.link.got.lock());
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|(node, to, id, _)| node == "node-c" && *to == jid && *id == SessionId(2)));
    assert!(take(&bob).await.0.is_empty());
    assert!(w.users.take().is_empty());
    // A frame naming another session id is not the moved session's.
    w.router
        .to_local_session(&jid, SessionId(99), chat(ALICE, jid.as_str()));
    assert_eq!(w.users.take().len(), 1);
    // The old actor stopped forwarding: §8.5.3.2 again.
    w.router.moved_end(SessionId(2));
    w.router
        .to_local_session(&jid, SessionId(2), chat(ALICE, jid.as_str()));
    assert_eq!(w.users.take().len(), 1);
    assert!(w.link.got.lock().is_empty());
}

#[actix_rt::test]
async fn xep0198_5_a_session_that_comes_back_is_not_forwarded_away() {
    let w = world();
    let jid = FullJid::new("bob@example.org/phone").unwrap();
    bind(&w.router, jid.as_str(), 2, 10);
    w.router.moved(&jid, SessionId(2), on_node_c(&w, &jid, 2));
    // It resumed here again (same id) and then ended: a late frame must not go back to
    // node-c, which may be forwarding here (two nodes would bounce it between them).
    let (back, _) = bind(&w.router, jid.as_str(), 2, 10);
    w.router
        .to_local_session(&jid, SessionId(2), chat(ALICE, jid.as_str()));
    assert_eq!(take(&back).await.0.len(), 1);
    w.router.unbind(&jid, SessionId(2));
    w.router
        .to_local_session(&jid, SessionId(2), chat(ALICE, jid.as_str()));
    assert!(w.link.got.lock().is_empty());
    assert_eq!(w.users.take().len(), 1);
}

#[actix_rt::test]
async fn rfc6120_8_3_1_an_error_stanza_is_never_answered() {
    let w = world_with(
        Users {
            refuse: Some(StanzaCondition::ResourceConstraint),
            ..Users::default()
        },
        Link::default(),
    );
    let error = el(
        "<message xmlns='jabber:client' type='error' from='alice@example.org/home' \
                    to='carol@elsewhere.net'/>",
    );
    assert!(matches!(w.router.route(error, ME), Routed::Dropped));
    // From the server: a refused error ends there too, and a refused answer is not answered
    // again (one call to the users for the stanza, one for its error, none after).
    w.router.send(chat(ALICE, "bob@example.org"), Wake::Start);
    let got = w.users.take();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0.as_str(), "alice@example.org");
    assert_eq!(condition(&got[1].1).as_deref(), Some("resource-constraint"));
}

#[actix_rt::test]
async fn a_bounce_to_a_sender_that_is_gone_goes_to_its_user_actor_only_if_running() {
    let w = world();
    // alice's session has ended: the error follows the road to her user actor, which is not
    // started for it.
    w.router.bounce(
        &chat(ALICE, "bob@example.org"),
        StanzaError::new(StanzaCondition::ServiceUnavailable),
    );
    let got = w.users.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_str(), "alice@example.org");
    assert_eq!(got[0].2, Wake::IfRunning);
    assert_eq!(condition(&got[0].1).as_deref(), Some("service-unavailable"));
}

#[actix_rt::test]
async fn without_a_user_layer_a_bare_jid_is_service_unavailable() {
    let router = Router::new(["example.org".to_owned()]);
    let routed = router.route(chat(ALICE, "bob@example.org"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("service-unavailable"));
}

// ----- components (XEP-0114) --------------------------------------------------------------------

#[actix_rt::test]
async fn xep0114_a_components_domain_goes_to_its_connection_not_the_foreign_hook() {
    let w = world();
    w.router.set_components(["bot.example.org".to_owned()]);
    let s2s = Arc::new(S2s::default());
    w.router.set_foreign(s2s.clone());
    let (bot, _) = bind(&w.router, "bot.example.org/component", 7, 10);
    for to in ["bot.example.org", "user@bot.example.org/res"] {
        let routed = w.router.route(chat(ALICE, to), ME);
        assert!(matches!(routed, Routed::Session), "{to}: {routed:?}");
    }
    let (got, _) = take(&bot).await;
    assert_eq!(got.len(), 2);
    assert!(s2s.got.lock().is_empty(), "nothing went to s2s");
    assert!(w.router.is_component("bot.example.org"));
    assert_eq!(w.router.components(), ["bot.example.org"]);
}

#[actix_rt::test]
async fn xep0114_a_component_that_is_not_connected_is_service_unavailable() {
    let w = world();
    w.router.set_components(["bot.example.org".to_owned()]);
    let routed = w.router.route(chat(ALICE, "user@bot.example.org"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("service-unavailable"));
    // A connection that went away meanwhile: the same, never the user actors.
    bind_handle(&w.router, "bot.example.org/component", gone_handle(8));
    let routed = w.router.route(chat(ALICE, "bot.example.org"), ME);
    let Routed::Bounced(error) = routed else {
        panic!("expected a bounce, got {routed:?}");
    };
    assert_eq!(condition(&error).as_deref(), Some("service-unavailable"));
    let jid = FullJid::new("bot.example.org/component").unwrap();
    w.router.unbind(&jid, SessionId(8));
    w.router
        .to_local_session(&jid, SessionId(8), chat(ALICE, "bot.example.org"));
    // Only the error goes on, to the sender's account (no session is bound for it here).
    let got = w.users.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0.as_str(), "alice@example.org");
    assert_eq!(condition(&got[0].1).as_deref(), Some("service-unavailable"));
}
