"""Opens N idle, authenticated, bound, available c2s sessions and holds them.

A stop-gap measuring tool until the load generator (parley-bench) exists: plain TCP
(optionally STARTTLS), SASL PLAIN as userK@localhost / "pw" for K in FIRST..FIRST+199,
bind, initial presence. Prints "connected N" once all are up, then sleeps.

    python3 idle_sessions.py N PORT [FIRST] [tls]
"""
import asyncio
import base64
import ssl
import sys

N = int(sys.argv[1])
PORT = int(sys.argv[2])
FIRST = int(sys.argv[3]) if len(sys.argv) > 3 else 0
TLS = "tls" in sys.argv[4:]
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE
HDR = (b"<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
       b"xmlns:stream='http://etherx.jabber.org/streams'>")


async def read_until(reader, marker):
    buf = b""
    while marker not in buf:
        data = await reader.read(4096)
        if not data:
            raise ConnectionError("closed: " + buf.decode(errors="replace"))
        buf += data
    return buf


async def one(i, sem, conns):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        w.write(HDR)
        await read_until(r, b"</stream:features>")
        if TLS:
            w.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            await read_until(r, b"proceed")
            await w.start_tls(CTX, server_hostname="localhost")
            w.write(HDR)
            await read_until(r, b"</stream:features>")
        creds = base64.b64encode(("\0user%d\0pw" % (FIRST + i % 200)).encode())
        w.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + creds + b"</auth>")
        await read_until(r, b"success")
        w.write(HDR)
        await read_until(r, b"</stream:features>")
        w.write(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        await read_until(r, b"</iq>")
        w.write(b"<presence/>")
        await w.drain()
        conns.append((r, w))


async def main():
    sem = asyncio.Semaphore(50)
    conns = []
    await asyncio.gather(*[one(i, sem, conns) for i in range(N)])
    print("connected", len(conns), flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
