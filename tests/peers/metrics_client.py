"""A Python `websockets` client for tests/all/metrics.rs: connects to argv[1] with the Origin
argv[2], sends the messages the test counts on (3 text, 2 binary), reads their echoes, then
closes with 1000 and prints "done"."""
import asyncio
import sys

import websockets


async def main(url, origin):
    async with websockets.connect(url, origin=origin) as ws:
        for m in ["one\n", "two\n", "three\n"]:
            await ws.send(m)
            await ws.recv()
        for m in [b"\x00\x01\x02", b"\xff" * 10]:
            await ws.send(m)
            await ws.recv()
    print("done", flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
