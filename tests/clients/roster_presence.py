#!/usr/bin/env python3
"""Roster pushes and presence subscriptions between real slixmpp clients, driven by
tests/e2e_slixmpp.rs.

alice logs in twice (resources one and two), bob once. All three request the roster
(RFC 6121 §2.2: they become interested) and send initial presence. Then:

1. alice/one adds bob to her roster with a handle and a group (RFC 6121 §2.3): both of
   alice's clients must see the roster push for bob (§2.1.6), with the handle and the group.
2. alice/one asks for a subscription to bob (§3.1.1). slixmpp's default handlers do the rest:
   bob's client approves and asks back (auto_authorize, auto_subscribe), alice's clients
   approve that. Both sides must end with subscription 'both' in their pushed rosters, bob
   must see alice online and alice (both clients) must see bob online ('got_online').

Exits 0 only if every step succeeded; otherwise prints what failed and exits 1. Never runs
longer than --deadline seconds.
"""

import argparse
import asyncio
import logging
import ssl
import sys

from slixmpp import ClientXMPP


class Client(ClientXMPP):
    """One client that records roster pushes and which contacts it saw come online."""

    def __init__(self, jid, password):
        super().__init__(jid, password)
        # STARTTLS on the given port only: no direct TLS, never plaintext.
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.failure = None
        # bare JID -> list of (subscription, ask, name, groups) in push order
        self.pushes = {}
        self.push_event = asyncio.Event()
        # bare JIDs seen online (other than our own account)
        self.online = set()
        self.online_event = asyncio.Event()
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("roster_update", self.on_roster_update)
        self.add_event_handler("got_online", self.on_got_online)
        self.add_event_handler("message", self.on_message)
        # bodies of chat messages received, with the sender's bare JID
        self.messages = []
        self.message_event = asyncio.Event()
        self.add_event_handler("failed_all_auth", self.on_failure("authentication failed"))
        self.add_event_handler("connection_failed", self.on_failure("connection failed"))
        self.add_event_handler("stream_error", self.on_stream_error)

    def on_failure(self, what):
        def handler(event):
            self.failure = self.failure or f"{self.boundjid}: {what}: {event}"
            self.started.set()

        return handler

    def on_stream_error(self, error):
        self.failure = self.failure or f"{self.boundjid}: stream error {error['condition']}"
        self.started.set()

    async def on_session_start(self, _event):
        try:
            await self.get_roster(timeout=10)
        except Exception as e:  # noqa: BLE001 - reported as the failure
            self.failure = self.failure or f"{self.boundjid}: roster get failed: {e!r}"
        self.send_presence()
        self.started.set()

    def on_roster_update(self, iq):
        # Fired for the roster get result as well; pushes are the iq sets (RFC 6121 §2.1.6).
        if iq["type"] != "set":
            return
        for jid, item in iq["roster"]["items"].items():
            self.pushes.setdefault(str(jid.bare), []).append(
                (item["subscription"], item["ask"], item["name"], sorted(item["groups"]))
            )
        self.push_event.set()

    def on_got_online(self, presence):
        bare = str(presence["from"].bare)
        if bare != self.boundjid.bare:
            self.online.add(bare)
            self.online_event.set()


    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.messages.append((str(msg["from"].bare), msg["body"]))
            self.message_event.set()


async def wait_for(client, event, check, timeout):
    """Waits until check() holds, re-checking each time `event` fires; returns check()."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        left = end - loop.time()
        if left <= 0:
            return False
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), left)
        except asyncio.TimeoutError:
            return check()
    return True


async def run(args):
    failures = []
    alice = "alice@localhost"
    bob = "bob@localhost"
    a1 = Client(f"{alice}/one", args.alice_password)
    a2 = Client(f"{alice}/two", args.alice_password)
    b = Client(f"{bob}/one", args.bob_password)
    clients = (a1, a2, b)
    step = args.budget / 4
    try:
        for c in clients:
            c.connect(args.host, args.port)
        for c in clients:
            try:
                await asyncio.wait_for(c.started.wait(), step)
            except asyncio.TimeoutError:
                failures.append(f"{c.boundjid}: no session_start")
        failures += [c.failure for c in clients if c.failure]
        if failures:
            return failures
        print(f"bound {', '.join(c.boundjid.full for c in clients)}; all requested the roster")

        # 1. A roster set by one of alice's clients is pushed to both of them.
        await a1.update_roster(bob, name="Bob", groups=["Friends"], timeout=10)
        for c in (a1, a2):
            ok = await wait_for(
                c,
                c.push_event,
                lambda c=c: any(
                    name == "Bob" and groups == ["Friends"]
                    for (_, _, name, groups) in c.pushes.get(bob, [])
                ),
                step,
            )
            if ok:
                print(f"{c.boundjid.full} got the roster push for {bob}")
            else:
                failures.append(
                    f"{c.boundjid.full}: no roster push for {bob} with name/group; "
                    f"pushes: {c.pushes}"
                )
        if failures:
            return failures

        # 2. Mutual subscription through slixmpp's default handlers.
        a1.send_presence(pto=bob, ptype="subscribe")
        both = lambda c, contact: any(s == "both" for (s, *_) in c.pushes.get(contact, []))
        checks = [
            (a1, a1.push_event, lambda: both(a1, bob), f"alice/one: roster item {bob} 'both'"),
            (a2, a2.push_event, lambda: both(a2, bob), f"alice/two: roster item {bob} 'both'"),
            (b, b.push_event, lambda: both(b, alice), f"bob: roster item {alice} 'both'"),
            (b, b.online_event, lambda: alice in b.online, f"bob sees {alice} online"),
            (a1, a1.online_event, lambda: bob in a1.online, f"alice/one sees {bob} online"),
            (a2, a2.online_event, lambda: bob in a2.online, f"alice/two sees {bob} online"),
        ]
        for c, event, check, what in checks:
            if await wait_for(c, event, check, step):
                print(f"ok: {what}")
            else:
                failures.append(
                    f"not seen: {what}; {c.boundjid.full} pushes {c.pushes}, online {c.online}"
                )
        if failures:
            return failures

        # 3. A message to the contact's bare JID (RFC 6121 §8.5.2.1.1) reaches the contact.
        b.send_message(mto=alice, mbody="hello alice, bare", mtype="chat")
        got = lambda c: (bob, "hello alice, bare") in c.messages
        if await wait_for(a1, a1.message_event, lambda: got(a1) or got(a2), step) or got(a2):
            print(f"ok: bob's message to {alice} (bare) arrived")
        else:
            failures.append(f"bob's message to {alice} (bare) did not arrive")
        failures += [c.failure for c in clients if c.failure]
        return failures
    finally:
        for c in clients:
            try:
                await asyncio.wait_for(c.disconnect(), 2)
            except Exception:  # noqa: BLE001 - a failed goodbye must not hide the verdict
                c.abort()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alice-password", required=True)
    parser.add_argument("--bob-password", required=True)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Leave room for the goodbyes (up to 2 s per client) after the work itself.
    args.budget = max(args.deadline - 8.0, 1.0)

    async def bounded():
        return await asyncio.wait_for(run(args), args.budget)

    try:
        failures = asyncio.run(bounded())
    except asyncio.TimeoutError:
        failures = [f"did not finish within {args.deadline} s"]
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
