"""WebSocket client (Python websockets) that says when each message arrived.

Usage: timed_client.py URL N
Receives N messages and prints `T MESSAGE` for each (T: time.time() on arrival, MESSAGE as
JSON), then closes. `refused STATUS` if the upgrade is answered with an HTTP error.
"""

import asyncio
import json
import sys
import time

import websockets


async def main(url, n):
    try:
        ws = await websockets.connect(url, open_timeout=10)
    except websockets.InvalidStatus as e:
        print("refused", e.response.status_code, flush=True)
        return
    async with ws:
        for _ in range(n):
            m = await asyncio.wait_for(ws.recv(), 20)
            print(f"{time.time():.6f} {json.dumps(m)}", flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
