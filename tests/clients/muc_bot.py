#!/usr/bin/env python3
"""One multi-user chat occupant (XEP-0045) with slixmpp's xep_0045 plugin, driven line by line
by tests/muc_cluster.rs: commands on standard input, one line per event on standard output.

The client logs in over STARTTLS (the test server's certificate is self-signed, so
verification is off) and prints `READY <full jid>`. Then it obeys these commands:

    JOIN <room> <nick> [<n>]      join_muc_wait asking for <n> messages of history (0 when
                                  not given); prints JOINED <room> <nick> <codes> or
                                  JOIN-ERROR <room> <condition>
    CONFIGURE <room> <var>=<value> ...
                                  the room's configuration form (get_room_config), these fields
                                  set, submitted (set_room_config); prints CONFIGURED <room> or
                                  CONFIG-ERROR <room> <condition>
    SAY <room> <id> <body>        one groupchat message with that id; prints SENT <id> <body>
    TALK <room> <prefix> <ms>     from now on (instead of any talking before), a groupchat
                                  message every <ms> ms, bodies and ids <prefix>-<n> where n
                                  counts every message talked (each printed as SENT)
    HUSH                          stops the talking; prints HUSHED <count sent>
    MAM <room>                    reads the room's archive (xep_0313, paged by xep_0059);
                                  prints MAM <stanza-id> <from> <body> per message, then
                                  MAM-END <count>
    QUIT                          leaves; prints BYE

and prints what the room sends:

    GROUPCHAT <from> <stanza-id by the room, or -> <id, or -> <delayed 0|1> <body>
    PRESENCE <from> <available|unavailable|error> <status codes, comma-separated, or ->
    ERROR <id, or -> <condition> <from>
    DISCONNECTED                  the connection ended (the test never expects it)

Exits when its standard input closes or --deadline seconds pass.
"""

import argparse
import asyncio
import logging
import ssl
import sys

from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout, PresenceError

SID = "urn:xmpp:sid:0"
DELAY = "urn:xmpp:delay"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def say(*parts):
    print(" ".join(str(p) for p in parts), flush=True)


def condition_of(stanza):
    """The defined condition of a stanza's <error/>."""
    error = stanza.xml.find("{jabber:client}error")
    if error is None:
        return "-"
    for child in error:
        if child.tag.startswith("{%s}" % STANZAS) and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return "-"


def room_stanza_id(xml, room):
    """The <stanza-id/> the room added (XEP-0359 §3: by= the room's bare JID)."""
    for sid in xml.findall("{%s}stanza-id" % SID):
        if sid.get("by") == room:
            return sid.get("id")
    return "-"


class Bot(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0059", "xep_0313", "xep_0359"):
            self.register_plugin(plugin)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.talker = None
        self.talked = 0
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("groupchat_message", self.on_groupchat)
        self.add_event_handler("groupchat_presence", self.on_presence)
        self.add_event_handler("groupchat_message_error", self.on_error)
        self.add_event_handler("disconnected", lambda _: say("DISCONNECTED"))

    async def on_start(self, _event):
        self.send_presence()
        self.started.set()

    def on_groupchat(self, msg):
        room = msg["from"].bare
        delayed = msg.xml.find("{%s}delay" % DELAY) is not None
        say(
            "GROUPCHAT",
            msg["from"].full,
            room_stanza_id(msg.xml, room),
            msg["id"] or "-",
            1 if delayed else 0,
            msg["body"],
        )

    def on_presence(self, pres):
        codes = sorted(pres["muc"]["status_codes"])
        kind = "unavailable" if pres["type"] == "unavailable" else pres["type"]
        if kind not in ("unavailable", "error"):
            kind = "available"
        say("PRESENCE", pres["from"].full, kind, ",".join(map(str, codes)) or "-")

    def on_error(self, msg):
        say("ERROR", msg["id"] or "-", condition_of(msg), msg["from"].full)

    def groupchat(self, room, mid, body):
        msg = self.make_message(mto=JID(room), mbody=body, mtype="groupchat")
        msg["id"] = mid
        msg.send()
        say("SENT", mid, body)

    async def talk(self, room, prefix, every):
        while True:
            self.talked += 1
            name = f"{prefix}-{self.talked}"
            self.groupchat(room, name, name)
            await asyncio.sleep(every)

    async def join(self, room, nick, history):
        try:
            pres, _subject, _occupants, _history = await self.plugin["xep_0045"].join_muc_wait(
                JID(room), nick, maxstanzas=history, timeout=20
            )
        except PresenceError as e:
            say("JOIN-ERROR", room, e.condition)
            return
        except asyncio.TimeoutError:
            say("JOIN-ERROR", room, "timeout")
            return
        codes = sorted(pres["muc"]["status_codes"])
        say("JOINED", room, nick, ",".join(map(str, codes)) or "-")

    async def configure(self, room, fields):
        muc = self.plugin["xep_0045"]
        try:
            form = await muc.get_room_config(JID(room), timeout=20)
            form.set_values(dict(fields))
            await muc.set_room_config(JID(room), form, timeout=20)
        except IqError as e:
            say("CONFIG-ERROR", room, e.condition)
            return
        except Exception as e:  # noqa: BLE001 - reported, never swallowed
            say("CONFIG-ERROR", room, type(e).__name__, str(e).replace("\n", " "))
            return
        say("CONFIGURED", room)

    async def archive(self, room):
        count = 0
        try:
            async for result in self.plugin["xep_0313"].iterate(jid=JID(room), rsm={"max": 20}):
                msg = result["mam_result"]["forwarded"]["stanza"]
                say("MAM", result["mam_result"]["id"], msg["from"].full, msg["body"])
                count += 1
        except (IqError, IqTimeout) as e:
            say("MAM-ERROR", room, getattr(e, "condition", type(e).__name__))
            return
        say("MAM-END", count)


async def commands(bot):
    """Obeys the test's commands until standard input closes (or QUIT)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()

    def spawn(coro):
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    while True:
        line = await reader.readline()
        if not line:
            return
        words = line.decode().split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        if cmd == "JOIN":
            spawn(bot.join(args[0], args[1], int(args[2]) if len(args) > 2 else 0))
        elif cmd == "CONFIGURE":
            spawn(bot.configure(args[0], [a.split("=", 1) for a in args[1:]]))
        elif cmd == "SAY":
            bot.groupchat(args[0], args[1], " ".join(args[2:]))
        elif cmd == "TALK":
            if bot.talker is not None:
                bot.talker.cancel()
            bot.talker = asyncio.ensure_future(bot.talk(args[0], args[1], int(args[2]) / 1000.0))
        elif cmd == "HUSH":
            if bot.talker is not None:
                bot.talker.cancel()
                bot.talker = None
            say("HUSHED", bot.talked)
        elif cmd == "MAM":
            spawn(bot.archive(args[0]))
        elif cmd == "QUIT":
            return
        else:
            say("UNKNOWN", cmd)


async def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--deadline", type=float, default=120.0)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    bot = Bot(a.jid, a.password)
    bot.connect(a.host, a.port)
    try:
        await asyncio.wait_for(bot.started.wait(), 20)
    except asyncio.TimeoutError:
        say("FAIL no session_start")
        return 1
    say("READY", bot.boundjid.full)
    try:
        await asyncio.wait_for(commands(bot), a.deadline)
    except asyncio.TimeoutError:
        say("FAIL deadline")
    if bot.talker is not None:
        bot.talker.cancel()
    try:
        await asyncio.wait_for(bot.disconnect(), 3)
    except Exception:  # noqa: BLE001 - a failed goodbye must not hide the verdict
        bot.abort()
    say("BYE")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
