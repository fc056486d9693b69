#!/usr/bin/env python3
"""One login the way an unconfigured client does it, driven by tests/e2e_slixmpp.rs.

slixmpp picks the SASL mechanism itself from what the server offers (poezio does not
configure it), connects over STARTTLS with certificate checks off (self-signed server), and
binds. Prints each mechanism it tried (from the <auth/> elements it sent), then `OK` once the
session started on this one connection; exits 1 on a failed authentication, a stream error or
a missed --deadline.
"""

import argparse
import asyncio
import re
import ssl
import sys

import slixmpp
from slixmpp import ClientXMPP


class Login(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.tried = []
        self.failure = None
        self.done = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", self.fail("every mechanism failed"))
        self.add_event_handler("stream_error", lambda e: self.fail("stream error")(e))
        self.add_event_handler("disconnected", self.fail("disconnected"))
        self.add_filter("out", self.record)

    def record(self, stanza):
        xml = str(stanza)
        m = re.match(r"<auth [^>]*mechanism=\"([^\"]+)\"", xml)
        if m:
            self.tried.append(m.group(1))
        return stanza

    def fail(self, what):
        def handler(event):
            if not self.done.is_set():
                self.failure = f"{what}: {event}"
                self.done.set()
        return handler

    async def on_start(self, _event):
        self.done.set()
        self.disconnect()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--deadline", type=float, default=20)
    a = p.parse_args()
    print(f"slixmpp {slixmpp.__version__}")
    c = Login(a.jid, a.password)
    c.connect((a.host, a.port))
    try:
        await asyncio.wait_for(c.done.wait(), a.deadline)
    except asyncio.TimeoutError:
        c.failure = c.failure or f"no session within {a.deadline} s"
    print("tried: " + " ".join(c.tried))
    if c.failure:
        print(f"FAILED: {c.failure}")
        return 1
    print("OK")
    return 0


sys.exit(asyncio.get_event_loop().run_until_complete(main()))
