#!/usr/bin/env python3
"""XEP-0198 stream resumption with a real client library, driven by
tests/stream_management.rs.

alice logs in with slixmpp's xep_0198 plugin (which enables Stream Management with
resumption after binding), bob logs in without it. bob sends alice "before", which alice
handles. Then alice's transport is aborted (no stream close, as when a network drops), bob
sends "while away", and alice connects again: the plugin resumes the old session instead of
binding a new one, which slixmpp reports with `session_resumed` (a new session would fire
`session_start` again). alice must keep her full JID, receive "while away" next (and not
"before" a second time: her `h` covered it), and her message to bob afterwards must reach him
from that full JID.

Prints one line per step (ENABLED, RESUMED <jid>, GOT while away) and OK last; exits 1 with
the reason on any failure. Never runs longer than --deadline seconds.
"""

import argparse
import asyncio
import ssl
import sys

from slixmpp import ClientXMPP


class Client(ClientXMPP):
    def __init__(self, jid, password, sm):
        super().__init__(jid, password)
        # STARTTLS on the given port; the test server's certificate is self-signed.
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        if sm:
            self.register_plugin("xep_0198")
        self.sessions = 0
        self.started = asyncio.Event()
        self.enabled = asyncio.Event()
        self.resumed = asyncio.Event()
        self.disconnected_once = asyncio.Event()
        self.inbox = asyncio.Queue()
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("sm_enabled", lambda _: self.enabled.set())
        self.add_event_handler("session_resumed", lambda _: self.resumed.set())
        self.add_event_handler("disconnected", lambda _: self.disconnected_once.set())
        self.add_event_handler("message", self.on_message)

    def on_session_start(self, _event):
        self.sessions += 1
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.inbox.put_nowait((msg["from"].full, msg["body"]))


async def step(what, awaitable, timeout):
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise SystemExit(f"FAILED: {what} (no event within {timeout} s)")


async def run(args):
    alice = Client("alice@localhost/slix", args.password, sm=True)
    bob = Client("bob@localhost/plain", args.password, sm=False)
    t = args.deadline / 6
    for c in (alice, bob):
        c.connect(args.host, args.port)
    await step("alice's session_start", alice.started.wait(), t)
    await step("bob's session_start", bob.started.wait(), t)
    await step("alice's sm_enabled", alice.enabled.wait(), t)
    sm = alice.plugin["xep_0198"]
    if not sm.sm_id:
        raise SystemExit("FAILED: <enabled/> without a resumption id")
    print(f"ENABLED id={sm.sm_id}", flush=True)
    jid = alice.boundjid.full

    bob.send_message(mto=jid, mbody="before", mtype="chat")
    frm, body = await step("'before' at alice", alice.inbox.get(), t)
    if body != "before":
        raise SystemExit(f"FAILED: alice got {body!r} from {frm}, expected 'before'")

    # The network drops: no </stream:stream>, no TLS close.
    alice.transport.abort()
    await step("alice's disconnected event", alice.disconnected_once.wait(), t)
    bob.send_message(mto=jid, mbody="while away", mtype="chat")

    alice.connect(args.host, args.port)
    await step("alice's session_resumed", alice.resumed.wait(), t)
    if alice.sessions != 1:
        raise SystemExit("FAILED: a new session started instead of the old one resuming")
    if alice.boundjid.full != jid:
        raise SystemExit(f"FAILED: resumed as {alice.boundjid.full}, was {jid}")
    print(f"RESUMED {alice.boundjid.full}", flush=True)

    frm, body = await step("'while away' at alice", alice.inbox.get(), t)
    if body != "while away":
        raise SystemExit(f"FAILED: after resuming alice got {body!r} from {frm} first")
    print("GOT while away", flush=True)

    alice.send_message(mto=bob.boundjid.full, mbody="after resume", mtype="chat")
    frm, body = await step("alice's message at bob", bob.inbox.get(), t)
    if (frm, body) != (jid, "after resume"):
        raise SystemExit(f"FAILED: bob got {body!r} from {frm}")

    for c in (alice, bob):
        c.disconnect()
    print("OK", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--deadline", type=float, default=30.0)
    a = p.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(asyncio.wait_for(run(a), a.deadline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
