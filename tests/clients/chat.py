#!/usr/bin/env python3
"""End-to-end chat between two real slixmpp clients, driven by tests/e2e_slixmpp.rs.

Both clients connect over STARTTLS (the server's certificate is self-signed, so verification
is off), one authenticates with SCRAM-SHA-1 and the other with SCRAM-SHA-256, both send
initial presence, and then each sends messages to the other's full JID. Exits 0 only if every
step succeeded and every message arrived from the right full JID; otherwise prints what failed
and exits 1. Never runs longer than --deadline seconds.

The roster is never requested: the server does not implement jabber:iq:roster yet, and
slixmpp's session_start does not need it.
"""

import argparse
import asyncio
import logging
import ssl
import sys

from slixmpp import ClientXMPP

ROUNDS = 3


class Chatter(ClientXMPP):
    """One client, forced to one SASL mechanism, that records the messages it receives."""

    def __init__(self, jid, password, mechanism):
        super().__init__(
            jid,
            password,
            plugin_config={"feature_mechanisms": {"use_mech": mechanism}},
        )
        self.wanted_mechanism = mechanism
        # STARTTLS on the given port only: no direct TLS, never plaintext.
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.failure = None
        self.used_mechanism = None
        self.inbox = asyncio.Queue()
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("auth_success", self.on_auth_success)
        self.add_event_handler("failed_all_auth", self.on_failure("authentication failed"))
        self.add_event_handler("no_auth", self.on_failure("no acceptable SASL mechanism"))
        self.add_event_handler("connection_failed", self.on_failure("connection failed"))
        self.add_event_handler("stream_error", self.on_stream_error)

    def on_failure(self, what):
        def handler(event):
            self.failure = self.failure or f"{self.boundjid.bare}: {what}: {event}"
            self.started.set()

        return handler

    def on_stream_error(self, error):
        self.failure = self.failure or f"{self.boundjid.bare}: stream error {error['condition']}"
        self.started.set()

    def on_auth_success(self, _stanza):
        self.used_mechanism = self.plugin["feature_mechanisms"].mech.name

    async def on_session_start(self, _event):
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.inbox.put_nowait((msg["from"].full, msg["body"]))


async def receive(client, sender, bodies, timeout):
    """Waits until every body in `bodies` arrived from `sender`; returns what is missing."""
    missing = set(bodies)
    wrong = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while missing:
        left = end - loop.time()
        if left <= 0:
            break
        try:
            frm, body = await asyncio.wait_for(client.inbox.get(), left)
        except asyncio.TimeoutError:
            break
        if body in missing and frm == sender:
            missing.discard(body)
        else:
            wrong.append((frm, body))
    return sorted(missing), wrong


async def run(args):
    failures = []
    one = Chatter(args.jid1, args.password1, "SCRAM-SHA-1")
    two = Chatter(args.jid2, args.password2, "SCRAM-SHA-256")
    clients = (one, two)
    try:
        for c in clients:
            c.connect(args.host, args.port)
        for c in clients:
            try:
                await asyncio.wait_for(c.started.wait(), args.budget / 2)
            except asyncio.TimeoutError:
                failures.append(f"{c.boundjid.bare}: no session_start")
        for c in clients:
            if c.failure:
                failures.append(c.failure)
        if failures:
            return failures
        for c in clients:
            if c.used_mechanism != c.wanted_mechanism:
                failures.append(
                    f"{c.boundjid.bare}: authenticated with {c.used_mechanism}, "
                    f"expected {c.wanted_mechanism}"
                )
            if not c.boundjid.resource:
                failures.append(f"{c.boundjid}: no resource bound")
        print(f"bound {one.boundjid.full} ({one.used_mechanism}) "
              f"and {two.boundjid.full} ({two.used_mechanism})")

        pairs = ((one, two), (two, one))
        expected = {}
        for sender, recipient in pairs:
            bodies = [f"{sender.boundjid.bare} to {recipient.boundjid.bare} #{i}" for i in range(ROUNDS)]
            expected[(sender, recipient)] = bodies
            for body in bodies:
                sender.send_message(mto=recipient.boundjid.full, mbody=body, mtype="chat")
        for (sender, recipient), bodies in expected.items():
            missing, wrong = await receive(recipient, sender.boundjid.full, bodies, args.budget / 3)
            for body in missing:
                failures.append(f"{recipient.boundjid.full} did not receive {body!r} from {sender.boundjid.full}")
            for frm, body in wrong:
                failures.append(f"{recipient.boundjid.full} got unexpected {body!r} from {frm}")
            if not missing and not wrong:
                print(f"{recipient.boundjid.full} received {len(bodies)} messages from {sender.boundjid.full}")
        for c in clients:
            if c.failure:
                failures.append(c.failure)
        return failures
    finally:
        for c in clients:
            try:
                await asyncio.wait_for(c.disconnect(), 3)
            except Exception:  # noqa: BLE001 - a failed goodbye must not hide the verdict
                c.abort()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jid1", required=True)
    parser.add_argument("--password1", required=True)
    parser.add_argument("--jid2", required=True)
    parser.add_argument("--password2", required=True)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )

    # Leave room for the goodbyes (up to 3 s per client) after the work itself.
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
