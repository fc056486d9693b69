#!/usr/bin/env python3
"""A slixmpp user that answers every chat message with "echo: " + its body, for
tests/browser.rs. Logs in over STARTTLS (any certificate accepted), prints READY once online,
and stops when its standard input closes (the test is done with it), or after --deadline
seconds at the latest."""

import argparse
import asyncio
import ssl
import sys

from slixmpp import ClientXMPP


class Echo(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)

    async def start(self, _event):
        self.send_presence()
        await self.get_roster()
        print("READY", flush=True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            print(f"ECHO to {msg['from']}", flush=True)
            msg.reply("echo: " + msg["body"]).send()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--deadline", type=float, default=60.0)
    a = p.parse_args()
    bot = Echo(a.jid, a.password)
    bot.connect(host=a.host, port=a.port)
    loop = asyncio.get_event_loop()
    closed = asyncio.Event()

    def on_stdin():
        if not sys.stdin.buffer.raw.read(4096):
            loop.remove_reader(sys.stdin.fileno())
            closed.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    try:
        loop.run_until_complete(asyncio.wait_for(closed.wait(), a.deadline))
    except asyncio.TimeoutError:
        pass
    bot.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
