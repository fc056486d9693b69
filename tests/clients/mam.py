#!/usr/bin/env python3
"""The message archive with real slixmpp clients, driven by tests/e2e_slixmpp.rs.

alice sends ROUNDS messages to bob, who receives each with a XEP-0359 stanza-id (slixmpp's
xep_0359). alice then leaves; a new alice client reads the conversation back with slixmpp's
XEP-0313 plugin, paging two at a time through XEP-0059; bob reads his own archive and finds
the ids he was given. Preferences go through slixmpp's XEP-0441 plugin: set, read back,
and obeyed. Exits 0 only if every step held; prints what failed otherwise. Never runs
longer than --deadline seconds.
"""

import asyncio
import ssl
import sys

import pair

from slixmpp import JID, ClientXMPP

ROUNDS = 5


class Client(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in ("xep_0030", "xep_0059", "xep_0313", "xep_0359", "xep_0441"):
            self.register_plugin(plugin)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.inbox = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _event):
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg["type"] == "chat" and msg["body"]:
            self.inbox.put_nowait(msg)


async def start(jid, password, host, port, budget):
    c = Client(jid, password)
    c.connect(host, port)
    await asyncio.wait_for(c.started.wait(), budget)
    return c


async def archive(client, with_jid, page):
    """The archived messages with `with_jid` as (archive id, body, from), oldest first."""
    out = []
    async for result in client.plugin["xep_0313"].iterate(
        with_jid=JID(with_jid), rsm={"max": page}
    ):
        forwarded = result["mam_result"]["forwarded"]
        msg = forwarded["stanza"]
        out.append((result["mam_result"]["id"], msg["body"], str(msg["from"])))
    return out


async def run(args):
    failures = []
    alice = await start(args.alice + "/phone", args.password, args.host, args.port, 10)
    bob = await start(args.bob + "/desk", args.password, args.host, args.port, 10)
    clients = [alice, bob]
    try:
        disco = await alice.plugin["xep_0030"].get_info(jid=args.alice)
        features = disco["disco_info"]["features"]
        if "urn:xmpp:mam:2" not in features:
            failures.append(f"the account does not advertise urn:xmpp:mam:2: {features}")
        bodies = [f"archived #{i}" for i in range(ROUNDS)]
        for body in bodies:
            alice.send_message(mto=args.bob, mbody=body, mtype="chat")
        given = {}
        for _ in bodies:
            msg = await asyncio.wait_for(bob.inbox.get(), 10)
            sid = msg["stanza_id"]
            if sid["by"] != JID(args.bob):
                failures.append(f"bob's copy has no stanza-id by bob: {msg}")
            given[msg["body"]] = sid["id"]
        print(f"bob received {len(given)} messages with stanza-ids")
        await alice.disconnect()
        clients.remove(alice)

        # A new client of alice reads the conversation back, two per page.
        alice2 = await start(args.alice + "/laptop", args.password, args.host, args.port, 10)
        clients.append(alice2)
        mine = await archive(alice2, args.bob, 2)
        if [b for (_, b, _) in mine] != bodies:
            failures.append(f"alice's archive with bob: {mine}")
        else:
            print(f"alice's new client read {len(mine)} archived messages in pages of 2")
        theirs = await archive(bob, args.alice, 3)
        ids = {b: i for (i, b, _) in theirs}
        if ids != given:
            failures.append(f"bob's archive ids {ids} differ from the stanza-ids {given}")
        elif any(f != args.alice + "/phone" for (_, _, f) in theirs):
            failures.append(f"bob's archive has the wrong senders: {theirs}")
        else:
            print("bob's archive ids equal the stanza-ids he was given")

        # XEP-0441: never archive with bob; then nothing new in alice's archive.
        prefs = alice2.plugin["xep_0441"]
        await prefs.set_preferences(default="always", never=[JID(args.bob)])
        default, always, never = await prefs.get_preferences()
        if default != "always" or [str(j) for j in never] != [args.bob]:
            failures.append(f"preferences read back as {default} {always} {never}")
        alice2.send_message(mto=args.bob, mbody="off the record", mtype="chat")
        await asyncio.wait_for(bob.inbox.get(), 10)
        after = await archive(alice2, args.bob, 10)
        if len(after) != ROUNDS:
            failures.append(f"a 'never' contact was archived: {after}")
        else:
            print("preferences set through XEP-0441 are obeyed")
        return failures
    finally:
        for c in clients:
            try:
                await asyncio.wait_for(c.disconnect(), 3)
            except Exception:  # noqa: BLE001 - a failed goodbye must not hide the verdict
                c.abort()


if __name__ == "__main__":
    sys.exit(pair.main(run, __doc__))
