#!/usr/bin/env python3
"""In-band registration (XEP-0077) with real slixmpp clients, driven by tests/e2e_slixmpp.rs.

The server runs with `[register] mode = "open"`. A new user, carl, registers in band with
slixmpp's xep_0077 plugin as its stream opens (the `register` event), logs in and sends
alice a message. He changes his password with the plugin, logs in with the new one, then
cancels his registration; a login after that fails. Exits 0 only if every step held;
prints what failed otherwise. Never runs longer than --deadline seconds.
"""

import asyncio
import ssl
import sys

import pair

from slixmpp import ClientXMPP

CARL = "carl@localhost"


class Client(ClientXMPP):
    """A client that either registers first (`register=True`) or just logs in."""

    def __init__(self, jid, password, register=False):
        super().__init__(jid, password)
        for plugin in ("xep_0030", "xep_0004", "xep_0066", "xep_0077"):
            self.register_plugin(plugin)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.failed = asyncio.Event()
        self.registered = False
        self.inbox = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _e: self.failed.set())
        self.add_event_handler("message", self.on_message)
        if register:
            self.add_event_handler("register", self.on_register)

    async def on_register(self, _form):
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        await iq.send()
        self.registered = True

    async def on_start(self, _event):
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg["type"] == "chat" and msg["body"]:
            self.inbox.put_nowait(msg)


async def connect(client, host, port, budget):
    """Connects; True once the session started, False if authentication failed."""
    client.connect(host, port)
    started = asyncio.ensure_future(client.started.wait())
    failed = asyncio.ensure_future(client.failed.wait())
    done, pending = await asyncio.wait(
        {started, failed}, timeout=budget, return_when=asyncio.FIRST_COMPLETED
    )
    for p in pending:
        p.cancel()
    if not done:
        raise asyncio.TimeoutError("neither logged in nor refused")
    return started in done


async def run(args):
    failures = []
    budget = 8.0
    clients = []
    try:
        alice = Client(args.alice, args.password)
        clients.append(alice)
        if not await connect(alice, args.host, args.port, budget):
            return ["alice could not log in"]

        carl = Client(CARL, "carl first pass", register=True)
        clients.append(carl)
        if not await connect(carl, args.host, args.port, budget) or not carl.registered:
            return [f"carl did not register and log in (registered={carl.registered})"]
        print("carl registered in band and logged in")

        carl.send_message(mto=args.alice, mbody="hello from a new account", mtype="chat")
        msg = await asyncio.wait_for(alice.inbox.get(), budget)
        if msg["from"].bare != CARL or msg["body"] != "hello from a new account":
            failures.append(f"alice got {msg['from']}: {msg['body']!r}")
        else:
            print("alice received carl's message")

        await carl["xep_0077"].change_password("carl second pass")
        carl2 = Client(CARL, "carl second pass")
        clients.append(carl2)
        if not await connect(carl2, args.host, args.port, budget):
            return failures + ["the new password did not log in"]
        old = Client(CARL, "carl first pass")
        clients.append(old)
        if await connect(old, args.host, args.port, budget):
            return failures + ["the old password still logs in"]
        print("carl changed his password and logged in with the new one")

        await carl2["xep_0077"].cancel_registration()
        again = Client(CARL, "carl second pass")
        clients.append(again)
        if await connect(again, args.host, args.port, budget):
            failures.append("carl's account still logs in after its removal")
        else:
            print("carl removed his account and can no longer log in")
    finally:
        pair.close_all(clients)
    return failures


if __name__ == "__main__":
    sys.exit(pair.main(run, __doc__))
