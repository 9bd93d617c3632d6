"""A Python `websockets` server for tests/all/on_connect.rs: logs what each connection sends.

Listens on 127.0.0.1, port 0, and prints `PORT <n>` once listening. For every message it prints
one JSON line `{"conn": K, "type": "text"|"binary", "data": "..."}` (K counts connections from 1;
binary data as hex). The first connection is closed with 1012 (service restart) after it has
sent `--drop-after` messages (default: never), to make a client reconnect.
"""

import argparse
import asyncio
import json

from websockets.asyncio.server import serve

count = 0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drop-after", type=int, default=0)
    args = parser.parse_args()

    async def handler(ws):
        global count
        count += 1
        me, seen = count, 0
        async for m in ws:
            seen += 1
            kind = "text" if isinstance(m, str) else "binary"
            data = m if kind == "text" else m.hex()
            print(json.dumps({"conn": me, "type": kind, "data": data}), flush=True)
            if me == 1 and args.drop_after and seen == args.drop_after:
                await ws.close(1012, "restart")
                return

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


asyncio.run(main())
