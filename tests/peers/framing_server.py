"""Scripted WebSocket server (Python websockets, new asyncio API) for tests/all/framing_python.rs.

Usage: framing_server.py [--script JSON|@FILE] [--reply-first]

Listens on 127.0.0.1, port 0 (plain ws) and prints `PORT <n>` on stdout once listening. Per
connection it

1. sends the scripted messages, in order. The script is a JSON list (given inline or, with a
   leading `@`, read from FILE: a long script does not fit one command-line argument) of
   {"type": "text", "data": "<str>"}, {"type": "binary", "data": "<hex>"} or
   {"type": "ping", "data": "<hex>"};
2. records every message it receives, as its type and exact bytes; with --reply-first it answers
   the first one with `re: ` + its payload (same type);
3. when the connection ends (normally: after the client's Close, which websockets answers at
   once), prints one JSON line and flushes it:
   {"received": [{"type": "text"|"binary", "hex": "<payload>"}...],
    "frames": [{"opcode": "TEXT"|"BINARY"|"CONT", "fin": bool, "len": N}...],
    "close": {"code": N, "reason": "<str>"} | null}
   where "frames" are the data frames the messages arrived in (fragmentation) and "close" is the
   Close frame received from the client (null: none arrived).

Keepalive pings are off, so the client sees only the scripted pings. Messages of any size are
accepted. Runs until killed.
"""

import argparse
import asyncio
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES


def load_script(arg: str) -> list:
    if arg.startswith("@"):
        with open(arg[1:], encoding="utf-8") as f:
            return json.load(f)
    return json.loads(arg)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", default="[]", help="JSON list of messages, or @FILE")
    parser.add_argument(
        "--reply-first",
        action="store_true",
        help="answer the first received message with 're: ' + its payload",
    )
    args = parser.parse_args()
    script = load_script(args.script)

    def watch_frames(connection, request):
        # Runs before the handshake response is sent, so no frame of the client is missed.
        connection.frames = []
        protocol = connection.protocol
        recv_frame = protocol.recv_frame

        def recording(frame):
            if frame.opcode in DATA_OPCODES:
                connection.frames.append(
                    {"opcode": frame.opcode.name, "fin": frame.fin, "len": len(frame.data)}
                )
            return recv_frame(frame)

        protocol.recv_frame = recording
        return None

    async def handler(ws):
        received = []
        try:
            for item in script:
                kind, data = item["type"], item["data"]
                if kind == "text":
                    await ws.send(data)
                elif kind == "binary":
                    await ws.send(bytes.fromhex(data))
                elif kind == "ping":
                    await ws.ping(bytes.fromhex(data))
                else:
                    raise ValueError(f"unknown script type {kind!r}")
            async for message in ws:
                if isinstance(message, str):
                    received.append({"type": "text", "hex": message.encode("utf-8").hex()})
                else:
                    received.append({"type": "binary", "hex": bytes(message).hex()})
                if args.reply_first and len(received) == 1:
                    if isinstance(message, str):
                        await ws.send("re: " + message)
                    else:
                        await ws.send(b"re: " + bytes(message))
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            close = None if rcvd is None else {"code": rcvd.code, "reason": rcvd.reason}
            record = {"received": received, "frames": ws.frames, "close": close}
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()

    async with serve(
        handler,
        "127.0.0.1",
        0,
        process_request=watch_frames,
        max_size=None,
        ping_interval=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
