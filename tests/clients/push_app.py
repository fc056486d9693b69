#!/usr/bin/env python3
"""A push app server (XEP-0357) with a real component library, driven by tests/push.rs.

slixmpp's ComponentXMPP connects to the component port as the app server's domain, answers
every pubsub publish with a result, and prints one line per notification:

    PUSH node=N count=C sender=S secret=X body=yes|no

(secret: the publish-options field the client registered; body: whether anything named
"body" was in the notification). A node whose name starts with "gone-" is a device the app
server no longer knows: its notifications are answered with <item-not-found/> (type
cancel), as XEP-0357 §8 describes. Prints READY once connected; runs until its standard input
closes or --deadline seconds pass.
"""

import argparse
import asyncio
import sys

from slixmpp.componentxmpp import ComponentXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"


def field(form, var):
    if form is None:
        return None
    for f in form.findall("{%s}field" % DATA):
        if f.get("var") == var:
            v = f.find("{%s}value" % DATA)
            return v.text if v is not None else ""
    return None


class App(ComponentXMPP):
    def __init__(self, domain, secret, host, port):
        super().__init__(domain, secret, host, port)
        self.add_event_handler("session_start", lambda _: print("READY", flush=True))
        self.register_handler(Callback(
            "push publish",
            MatchXPath("{jabber:component:accept}iq/{%s}pubsub" % PUBSUB),
            self.on_publish))

    def on_publish(self, iq):
        pubsub = iq.xml.find("{%s}pubsub" % PUBSUB)
        publish = pubsub.find("{%s}publish" % PUBSUB)
        summary = publish.find("{%s}item/{urn:xmpp:push:0}notification/{%s}x" % (PUBSUB, DATA))
        options = pubsub.find("{%s}publish-options/{%s}x" % (PUBSUB, DATA))
        body = "body" in "".join(f.get("var") or "" for f in summary.findall("{%s}field" % DATA))
        print("PUSH node=%s count=%s sender=%s secret=%s body=%s" % (
            publish.get("node"), field(summary, "message-count"),
            field(summary, "last-message-sender"), field(options, "secret"),
            "yes" if body else "no"), flush=True)
        if (publish.get("node") or "").startswith("gone-"):
            err = iq.reply(clear=True)
            err["type"] = "error"
            err["error"]["type"] = "cancel"
            err["error"]["condition"] = "item-not-found"
            err.send()
        else:
            iq.reply(clear=True).send()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--deadline", type=float, default=60)
    a = p.parse_args()
    app = App(a.domain, a.secret, a.host, a.port)
    app.connect()
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait_for(stdin_closed, a.deadline)
    except asyncio.TimeoutError:
        pass
    app.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
