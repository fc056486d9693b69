#!/usr/bin/env python3
"""XEP-0114 with a real component library, driven by tests/components.rs.

An echo component (slixmpp's ComponentXMPP) connects to the component port with the
domain's secret; alice (slixmpp's ClientXMPP, STARTTLS, SCRAM) logs in and sends
"hello" to echo@DOMAIN; the component answers "echo: hello" from the JID it was written
to, and alice must receive it.

Prints COMPONENT CONNECTED, COMPONENT GOT hello, CLIENT GOT echo: hello, then OK; exits 1
with the reason on any failure. Never runs longer than --deadline seconds.
"""

import argparse
import asyncio
import ssl
import sys

from slixmpp import ClientXMPP
from slixmpp.componentxmpp import ComponentXMPP


class Echo(ComponentXMPP):
    def __init__(self, domain, secret, host, port):
        super().__init__(domain, secret, host, port)
        self.connected_event = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    def on_start(self, _):
        print("COMPONENT CONNECTED", flush=True)
        self.connected_event.set()

    def on_message(self, msg):
        text = msg["body"]
        print(f"COMPONENT GOT {text}", flush=True)
        msg.reply(f"echo: {text}").send()


class Alice(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.answer = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    def on_start(self, _):
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"].startswith("echo: "):
            print(f"CLIENT GOT {msg['body']}", flush=True)
            self.answer.set()


async def main(args):
    echo = Echo(args.domain, args.secret, args.host, args.component_port)
    echo.connect()
    await asyncio.wait_for(echo.connected_event.wait(), args.deadline / 3)
    alice = Alice("alice@localhost/slix", args.password)
    alice.connect(host=args.host, port=args.c2s_port)
    await asyncio.wait_for(alice.started.wait(), args.deadline / 3)
    alice.send_message(mto=f"echo@{args.domain}", mbody="hello", mtype="chat")
    await asyncio.wait_for(alice.answer.wait(), args.deadline / 3)
    alice.disconnect()
    echo.disconnect()
    print("OK", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--c2s-port", type=int, required=True)
    p.add_argument("--component-port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--deadline", type=float, default=30)
    args = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(main(args), args.deadline))
    except Exception as e:  # noqa: BLE001 - report whatever went wrong
        print(f"FAILED: {e!r}", flush=True)
        sys.exit(1)
