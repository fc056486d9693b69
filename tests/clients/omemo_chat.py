#!/usr/bin/env python3
"""OMEMO (XEP-0384) between two real slixmpp clients with the slixmpp-omemo plugin, driven by
tests/e2e_slixmpp.rs: the proof that the server's PEP (XEP-0163) carries what end-to-end
encryption needs.

alice and bob become mutual contacts (slixmpp's default subscription handling), each
client's plugin publishes its device list and bundle to its own PEP service (open access,
publish-options), then alice encrypts a message for bob (fetching bob's device list and
bundle from his PEP service), bob decrypts it and answers encrypted, and alice decrypts the
answer. The server only ever relays ciphertext. Exits 0 only if both plaintexts came back;
prints what failed otherwise. Never runs longer than --deadline seconds.
"""

import argparse
import asyncio
import logging
import ssl
import sys
from typing import Any, Dict, FrozenSet, Optional

from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import DeviceInformation, JSONType
from slixmpp import JID, ClientXMPP
from slixmpp.plugins import register_plugin
from slixmpp_omemo import TrustLevel, XEP_0384

import pair


class MemoryStorage(Storage):
    """The OMEMO library's key-value storage, in memory (each run starts fresh)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: Dict[str, JSONType] = {}

    async def _load(self, key: str) -> Maybe[JSONType]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: JSONType) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class Omemo(XEP_0384):
    """slixmpp-omemo's plugin with blind trust before verification (BTBV)."""

    default_config = {"fallback_message": "This message is OMEMO encrypted."}

    def plugin_init(self) -> None:
        self._memory = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self) -> Storage:
        return self._memory

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(
        self, blindly_trusted: FrozenSet[DeviceInformation], identifier: Optional[str]
    ) -> None:
        pass

    async def _prompt_manual_trust(
        self, manually_trusted: FrozenSet[DeviceInformation], identifier: Optional[str]
    ) -> None:
        manager = await self.get_session_manager()
        for device in manually_trusted:
            await manager.set_trust(device.bare_jid, device.identity_key, TrustLevel.TRUSTED.value)


register_plugin(Omemo)


class Client(ClientXMPP):
    def __init__(self, jid: str, password: str, peer: str) -> None:
        super().__init__(jid, password)
        self.peer = JID(peer)
        for plugin in ("xep_0030", "xep_0060", "xep_0163", "xep_0199", "xep_0380"):
            self.register_plugin(plugin)
        self.register_plugin("xep_0384", module=sys.modules[__name__])
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.omemo_ready = asyncio.Event()
        self.mutual = asyncio.Event()
        self.inbox: "asyncio.Queue[Any]" = asyncio.Queue()
        # The peer's device list, pushed by the peer's PEP service (a notification or the
        # last published item when this client's presence reached it).
        self.peer_devices = asyncio.Event()
        self.add_event_handler("oldmemo_device_list_publish", self.on_device_list)
        self.add_event_handler("twomemo_device_list_publish", self.on_device_list)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("omemo_initialized", lambda _: self.omemo_ready.set())
        self.add_event_handler("changed_subscription", self.on_subscription)
        self.add_event_handler("roster_update", self.on_subscription)
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _event: Any) -> None:
        self.send_presence()
        await self.get_roster()
        self.started.set()
        self.on_subscription(None)

    def on_subscription(self, _event: Any) -> None:
        roster = self.client_roster
        if roster.has_jid(self.peer) and roster[self.peer]["subscription"] == "both":
            self.mutual.set()

    def on_device_list(self, msg: Any) -> None:
        if msg["from"].bare == self.peer.bare:
            self.peer_devices.set()

    def on_message(self, msg: Any) -> None:
        if msg["type"] in ("chat", "normal"):
            self.inbox.put_nowait(msg)

    async def send_encrypted(self, text: str) -> None:
        msg = self.make_message(mto=self.peer, mtype="chat")
        msg["body"] = text
        encrypted, errors = await self["xep_0384"].encrypt_message(msg, JID(self.peer.bare))
        if errors:
            logging.warning("non-critical encryption errors: %s", errors)
        if encrypted is None:
            raise RuntimeError("nothing to send after encryption")
        encrypted.send()

    async def receive_decrypted(self, timeout: float) -> str:
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), timeout)
            if self["xep_0384"].is_encrypted(msg):
                plain, _device = await self["xep_0384"].decrypt_message(msg)
                return plain["body"]


async def run(args: argparse.Namespace) -> list:
    failures = []
    alice = Client(args.alice + "/omemo", args.password, args.bob)
    bob = Client(args.bob + "/omemo", args.password, args.alice)
    clients = [alice, bob]
    try:
        for c in clients:
            c.connect(args.host, args.port)
        for c in clients:
            await asyncio.wait_for(c.started.wait(), 10)
        # Mutual presence subscription: slixmpp approves and subscribes back by default.
        alice.send_presence(pto=args.bob, ptype="subscribe")
        for c in clients:
            await asyncio.wait_for(c.mutual.wait(), 10)
        print("alice and bob are mutual contacts")
        for c in clients:
            await asyncio.wait_for(c.omemo_ready.wait(), 15)
        print("both clients published their OMEMO device lists and bundles")
        for c in clients:
            await asyncio.wait_for(c.peer_devices.wait(), 10)
        print("each client got the other's device list from the PEP service")
        await alice.send_encrypted("the eagle lands at dawn")
        got = await bob.receive_decrypted(10)
        if got != "the eagle lands at dawn":
            failures.append(f"bob decrypted {got!r}")
        else:
            print("bob decrypted alice's message")
        await bob.send_encrypted("copy that")
        got = await alice.receive_decrypted(10)
        if got != "copy that":
            failures.append(f"alice decrypted {got!r}")
        else:
            print("alice decrypted bob's answer")
        return failures
    finally:
        for c in clients:
            try:
                await asyncio.wait_for(c.disconnect(), 3)
            except Exception:  # noqa: BLE001 - a failed goodbye must not hide the verdict
                c.abort()


if __name__ == "__main__":
    sys.exit(pair.main(run, __doc__, deadline=45.0))
