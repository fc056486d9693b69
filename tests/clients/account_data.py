#!/usr/bin/env python3
"""Account data with real slixmpp clients and their plugins, driven by tests/e2e_slixmpp.rs.

alice and bob subscribe to each other. Then, each through slixmpp's own plugin:
* XEP-0054: alice publishes her vCard; bob reads it from her bare JID.
* XEP-0084: alice publishes an avatar (data, then metadata); bob, whose entity capabilities
  ask for metadata notifications (XEP-0115 +notify), is notified and fetches the data.
* XEP-0402: alice stores a bookmark in `urn:xmpp:bookmarks:1` with the publish-options the
  XEP asks for, and reads it back.
* XEP-0352: bob goes inactive; alice changes her presence three times, then sends a message
  with a body; bob gets only her latest presence and the message.
Exits 0 only if every step held; prints what failed otherwise. Never runs longer than
--deadline seconds.
"""

import asyncio
import ssl
import sys

import pair

from slixmpp import JID, ClientXMPP
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0402.stanza import Conference

AVATAR = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
BOOKMARKS = "urn:xmpp:bookmarks:1"
ROOM = "tea@conference.example.org"


class Client(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in (
            "xep_0030", "xep_0004", "xep_0054", "xep_0060", "xep_0115", "xep_0163",
            "xep_0084", "xep_0199", "xep_0352", "xep_0402",
        ):
            self.register_plugin(plugin)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.inbox = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.avatar_events = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("avatar_metadata_publish", self.avatar_events.put_nowait)

    async def on_start(self, _event):
        await self.get_roster()
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg["type"] == "chat" and msg["body"]:
            self.inbox.put_nowait(msg)

    def on_presence(self, presence):
        # slixmpp reports an available presence's type as its show.
        if presence["type"] in ("available", "chat", "away", "xa", "dnd"):
            self.presences.put_nowait(presence)


async def start(jid, password, host, port, budget):
    c = Client(jid, password)
    c.connect(host, port)
    await asyncio.wait_for(c.started.wait(), budget)
    return c


async def both_ways(alice, bob, budget):
    """Mutual presence subscription; slixmpp accepts and asks back on its own."""
    alice.send_presence_subscription(pto=bob.boundjid.bare)

    async def mutual():
        # Each roster push wakes the check (an event, not a timer).
        changed = asyncio.Event()
        for c in (alice, bob):
            c.add_event_handler("roster_update", lambda _iq: changed.set())
        while True:
            a = alice.client_roster[bob.boundjid.bare]["subscription"]
            b = bob.client_roster[alice.boundjid.bare]["subscription"]
            if a == "both" and b == "both":
                return
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(mutual(), budget)


async def vcard(alice, bob, failures):
    card = alice.plugin["xep_0054"].make_vcard()
    card["FN"] = "Alice Liddell"
    card["NICKNAME"] = "alice"
    await alice.plugin["xep_0054"].publish_vcard(card)
    got = await bob.plugin["xep_0054"].get_vcard(JID(alice.boundjid.bare), local=False)
    if got["vcard_temp"]["FN"] != "Alice Liddell":
        failures.append(f"bob read FN {got['vcard_temp']['FN']!r}")
    else:
        print("bob read alice's vCard (XEP-0054)")


async def avatar(alice, bob, failures, budget):
    avatar_id = alice.plugin["xep_0084"].generate_id(AVATAR)
    await alice.plugin["xep_0084"].publish_avatar(AVATAR)
    await alice.plugin["xep_0084"].publish_avatar_metadata(
        [{"id": avatar_id, "type": "image/png", "bytes": len(AVATAR)}]
    )
    while True:
        event = await asyncio.wait_for(bob.avatar_events.get(), budget)
        if event["from"].bare == alice.boundjid.bare:
            break
    info = event["pubsub_event"]["items"]["item"]["avatar_metadata"]["info"]
    if info["id"] != avatar_id:
        failures.append(f"metadata names {info['id']}, not {avatar_id}")
        return
    result = await bob.plugin["xep_0084"].retrieve_avatar(JID(alice.boundjid.bare), avatar_id)
    data = result["pubsub"]["items"]["item"]["avatar_data"]["value"]
    if data != AVATAR:
        failures.append(f"bob fetched {len(data)} bytes, not the {len(AVATAR)} published")
    else:
        print("bob got alice's avatar through PEP (XEP-0084)")


async def bookmarks(alice, failures):
    conf = Conference()
    conf["name"] = "Tea party"
    conf["autojoin"] = True
    conf["nick"] = "alice"
    options = Form()
    options["type"] = "submit"
    options.add_field(var="FORM_TYPE", ftype="hidden",
                      value="http://jabber.org/protocol/pubsub#publish-options")
    options.add_field(var="pubsub#persist_items", value="true")
    options.add_field(var="pubsub#max_items", value="max")
    options.add_field(var="pubsub#send_last_published_item", value="never")
    options.add_field(var="pubsub#access_model", value="whitelist")
    await alice.plugin["xep_0163"].publish(conf, node=BOOKMARKS, id=ROOM, options=options)
    result = await alice.plugin["xep_0060"].get_items(JID(alice.boundjid.bare), BOOKMARKS)
    items = list(result["pubsub"]["items"])
    if len(items) != 1 or items[0]["id"] != ROOM:
        failures.append(f"bookmarks read back: {[i['id'] for i in items]}")
        return
    c = items[0]["conference"]
    if (c["name"], c["autojoin"], c["nick"]) != ("Tea party", True, "alice"):
        failures.append(f"bookmark read back as {c['name']!r} {c['autojoin']} {c['nick']!r}")
    else:
        print("alice stored and read back a bookmark (XEP-0402)")


async def csi(alice, bob, failures, budget):
    if not bob.plugin["xep_0352"].enabled:
        failures.append("the server did not offer CSI")
        return
    # Drain what came before, then go inactive; the ping's answer proves it was taken.
    while not bob.presences.empty():
        bob.presences.get_nowait()
    bob.plugin["xep_0352"].send_inactive()
    await bob.plugin["xep_0199"].ping(JID(bob.boundjid.domain), timeout=budget)
    for show in ("away", "xa", "dnd"):
        alice.send_presence(pshow=show, pstatus=f"now {show}")
    # RFC 6121 §4.4.2: alice's own resource gets her broadcast too, after her contacts'
    # sessions were given it. Her message follows only then: it takes the direct road to
    # bob's session and could otherwise overtake the broadcast (see docs/routing.md).
    while True:
        p = await asyncio.wait_for(alice.presences.get(), budget)
        if p["from"] == alice.boundjid and p["show"] == "dnd":
            break
    alice.send_message(mto=bob.boundjid.bare, mbody="are you there?", mtype="chat")
    msg = await asyncio.wait_for(bob.inbox.get(), budget)
    if msg["body"] != "are you there?":
        failures.append(f"bob got {msg['body']!r}")
    # Everything held was written before the message: what is queued now is all there is.
    seen = []
    while not bob.presences.empty():
        p = bob.presences.get_nowait()
        if p["from"].bare == alice.boundjid.bare:
            seen.append(p["show"])
    bob.plugin["xep_0352"].send_active()
    if seen != ["dnd"]:
        failures.append(f"inactive bob saw alice's presences {seen}, not only the latest")
    else:
        print("bob, inactive, got only alice's latest presence, flushed by her message (XEP-0352)")


async def run(args):
    failures = []
    budget = 8.0
    clients = []
    try:
        alice = await start(args.alice, args.password, args.host, args.port, budget)
        clients.append(alice)
        bob = await start(args.bob, args.password, args.host, args.port, budget)
        clients.append(bob)
        await both_ways(alice, bob, budget)
        await vcard(alice, bob, failures)
        await avatar(alice, bob, failures, budget)
        await bookmarks(alice, failures)
        await csi(alice, bob, failures, budget)
    finally:
        pair.close_all(clients)
    return failures


if __name__ == "__main__":
    sys.exit(pair.main(run, __doc__))
