"""A Python `websockets` client that sends its messages and closes at once, a third-party peer for
the tests of wsbridge's server side.

Usage: close_client.py URL MESSAGE...

Sends each MESSAGE as a text message, then calls close() at once while a reader keeps reading
(the usual `async for` loop). Prints `text "..."` (JSON-encoded) for every message that
arrives, then `closed CODE` with the code of the Close received (1006: none). Bounded: the
library's close timeout is 10 s.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main() -> None:
    url, messages = sys.argv[1], sys.argv[2:]
    async with connect(url) as ws:

        async def read() -> None:
            async for m in ws:
                print("text", json.dumps(m), flush=True)

        reader = asyncio.create_task(read())
        for m in messages:
            await ws.send(m)
        await ws.close()
        await reader
        # The code of the Close received (1006 when none was).
        print("closed", ws.close_code, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
