"""permessage-deflate peers (Python websockets, new asyncio API), for tests/all/deflate.rs.

Usage: deflate_peer.py server
       deflate_peer.py client URL [--server-no-context-takeover] [--client-no-context-takeover]
                                  [--server-max-window-bits N] [--client-max-window-bits N]
                                  [--text-only]

server: an echo server with websockets' default compression (permessage-deflate), on
127.0.0.1, port 0; prints `PORT <n>`, then for every connection one line
`conn {"request": ..., "answer": ..., "extensions": [...]}` (JSON: the request's and the
response's Sec-WebSocket-Extensions, and the extensions in use), then echoes every message.

client: connects with a permessage-deflate offer built from the options (nothing else offered),
prints `answer <the response's Sec-WebSocket-Extensions, JSON>` and `extensions <JSON list>`,
then sends the test messages one by one (text and binary, empty ones, 60 similar JSON messages,
a 512 KiB compressible text, 200 KiB of random bytes), each followed by its echo, which must be
the same message (type and bytes). Prints `ok N` when all N came back, or `mismatch I WHY`; then
`closed CODE` after a normal close. --text-only: text messages only (for a line backend: no
newlines in them). Exit status 0 unless something failed.
"""

import argparse
import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


def out(*words: str) -> None:
    print(" ".join(words), flush=True)


def messages(text_only: bool) -> list:
    rnd = random.Random(7692)
    msgs = ["", "hello", "héllo wörld ✓"]
    if not text_only:
        msgs += [b"", bytes(range(256)), b"\x00" * 1000]
    for i in range(60):
        msgs.append(
            json.dumps(
                {
                    "seq": i,
                    "user": "alice",
                    "channel": "town-square",
                    "text": f"message number {i} about the weather, which is fine",
                    "tags": ["a", "b", "c"],
                }
            )
        )
    row = '{"id": 12345, "name": "permessage-deflate", "ok": true, "values": [1, 2, 3]}, '
    msgs.append(("[" + row * (512 * 1024 // len(row)))[: 512 * 1024])
    if text_only:
        msgs.append(rnd.randbytes(100 * 1024).hex())
    else:
        msgs.append(rnd.randbytes(200 * 1024))
    return msgs


async def run_server() -> int:
    async def echo(ws):
        info = {
            "request": ", ".join(ws.request.headers.get_all("Sec-WebSocket-Extensions")),
            "answer": ", ".join(ws.response.headers.get_all("Sec-WebSocket-Extensions")),
            "extensions": [repr(e) for e in ws.protocol.extensions],
        }
        out("conn", json.dumps(info))
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, max_size=None, ping_interval=None) as server:
        out("PORT", str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()
    return 0


async def run_client(args) -> int:
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=args.server_no_context_takeover,
        client_no_context_takeover=args.client_no_context_takeover,
        server_max_window_bits=args.server_max_window_bits,
        client_max_window_bits=args.client_max_window_bits,
    )
    async with connect(
        args.url,
        compression=None,
        extensions=[factory],
        max_size=None,
        ping_interval=None,
        open_timeout=10,
        close_timeout=10,
    ) as ws:
        answer = ", ".join(ws.response.headers.get_all("Sec-WebSocket-Extensions"))
        out("answer", json.dumps(answer))
        out("extensions", json.dumps([repr(e) for e in ws.protocol.extensions]))
        msgs = messages(args.text_only)
        for i, m in enumerate(msgs):
            await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 10)
            if type(got) is not type(m):
                out("mismatch", str(i), f"type {type(got).__name__} for {type(m).__name__}")
                return 1
            if got != m:
                out("mismatch", str(i), f"{len(got)} bytes for {len(m)}")
                return 1
        out("ok", str(len(msgs)))
    out("closed", str(ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else "none"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    sub.add_parser("server")
    c = sub.add_parser("client")
    c.add_argument("url")
    c.add_argument("--server-no-context-takeover", action="store_true")
    c.add_argument("--client-no-context-takeover", action="store_true")
    c.add_argument("--server-max-window-bits", type=int)
    # Without a value websockets offers a bare client_max_window_bits (True).
    c.add_argument("--client-max-window-bits", type=int, default=True)
    c.add_argument("--text-only", action="store_true")
    args = parser.parse_args()
    if args.role == "server":
        return asyncio.run(run_server())
    return asyncio.run(run_client(args))


if __name__ == "__main__":
    sys.exit(main())
