"""Scripted WebSocket client (Python websockets, new asyncio API), a third-party peer for the tests.

Usage: ws_client.py URL [--header 'Name: value' ...] [--origin ORIGIN] [--subprotocol P ...]
                    [--cafile PEM] [--certfile PEM --keyfile PEM] [--preconnect] --script JSON

Connects to URL, runs the script, and prints one line per event on stdout (flushed), so a test
can compare the whole output exactly. Strings in the output are JSON-encoded; bytes are hex.
With --preconnect the TCP connection is made first, and the upgrade request is sent only after
a line arrives on standard input.

  tcp connected            --preconnect: the TCP connection is up
  open PROTOCOL            handshake done; PROTOCOL is the negotiated subprotocol or null
  refused STATUS           the server answered the upgrade with HTTP STATUS (then exit 0)
  failed TYPE "MESSAGE"    the connection or TLS handshake failed otherwise (then exit 0)
  text "..."               a text message arrived
  binary HEX               a binary message arrived
  close CODE "REASON"      the server's Close arrived (CODE 1005: none given; "close none" when
                           the connection ended without a Close frame)
  closed CODE "REASON"     our Close was answered with this Close
  local PORT               the client's own TCP port
  say WORD                 the script reached a `say` step
  timeout STEP             a step did not finish within 10 s (then exit 3)

The script is a JSON list of steps, each a list:

  ["text", "s"]                send a text message
  ["binary", "00ff"]           send a binary message (hex)
  ["pattern", "binary"|"text", N]
                               send N bytes of a fixed pattern: byte i is (i * 31 + 7) % 256 for
                               binary, chr(97 + i % 26) for text
  ["recv", N]                  receive N data messages (printing each)
  ["recv_until", "s"]          receive (printing) until the text message "s"
  ["recv_pattern", N]          receive binary messages until N bytes arrived, compare them with
                               the binary pattern; prints `pattern N ok` or
                               `pattern mismatch at OFFSET` (whatever the message sizes)
  ["recv_close"]               receive (printing) until the server's Close
  ["close", CODE, "REASON"]    send Close and wait for the answer
  ["local"]                    print the local port
  ["say", "WORD"]              print `say WORD`
  ["wait"]                     wait for a line on standard input

Every step is bounded by a 10 s timeout. The exit status is 0 unless a step timed out.
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import urllib.parse

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

STEP_TIMEOUT = 10


def out(*words: str) -> None:
    print(" ".join(words), flush=True)


def js(value) -> str:
    return json.dumps(value, ensure_ascii=True)


def pattern(kind: str, n: int):
    if kind == "binary":
        return bytes((i * 31 + 7) % 256 for i in range(n))
    return "".join(chr(97 + i % 26) for i in range(n))


def show_message(msg) -> None:
    if isinstance(msg, str):
        out("text", js(msg))
    else:
        out("binary", msg.hex())


def show_close(word: str, frame) -> None:
    if frame is None:
        out(word, "none")
    else:
        out(word, str(frame.code), js(frame.reason))


class Stdin:
    """Lines from standard input, read without blocking the event loop."""

    def __init__(self) -> None:
        self.reader = None

    async def line(self) -> str:
        if self.reader is None:
            loop = asyncio.get_running_loop()
            self.reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(self.reader)
            await loop.connect_read_pipe(lambda: protocol, sys.stdin)
        return (await self.reader.readline()).decode()


async def run_step(ws, step, stdin: Stdin) -> bool:
    """Run one step; False when the server closed the connection (the script stops there)."""
    op = step[0]
    try:
        if op == "text":
            await ws.send(step[1])
        elif op == "binary":
            await ws.send(bytes.fromhex(step[1]))
        elif op == "pattern":
            await ws.send(pattern(step[1], step[2]))
        elif op == "recv":
            for _ in range(step[1]):
                show_message(await ws.recv())
        elif op == "recv_until":
            while True:
                msg = await ws.recv()
                show_message(msg)
                if msg == step[1]:
                    break
        elif op == "recv_pattern":
            want = pattern("binary", step[1])
            got = bytearray()
            while len(got) < len(want):
                msg = await ws.recv()
                if isinstance(msg, str):
                    raise SystemExit("recv_pattern: a text message arrived")
                got += msg
            if bytes(got) == want:
                out("pattern", str(len(got)), "ok")
            else:
                at = next(
                    (i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                    min(len(got), len(want)),
                )
                out("pattern", "mismatch", "at", str(at))
        elif op == "recv_close":
            while True:
                show_message(await ws.recv())
        elif op == "close":
            await ws.close(step[1], step[2] if len(step) > 2 else "")
            show_close("closed", ws.protocol.close_rcvd)
        elif op == "local":
            out("local", str(ws.local_address[1]))
        elif op == "say":
            out("say", step[1])
        elif op == "wait":
            await stdin.line()
        else:
            raise SystemExit(f"unknown step {step!r}")
    except ConnectionClosed as e:
        show_close("close", e.rcvd)
        return False
    return True


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--origin")
    parser.add_argument("--subprotocol", action="append", default=[])
    parser.add_argument("--cafile", help="trusted CA (PEM) for wss://")
    parser.add_argument("--certfile", help="client certificate (PEM) for wss://")
    parser.add_argument("--keyfile", help="client key (PEM) for wss://")
    parser.add_argument("--preconnect", action="store_true", help="TCP first, upgrade on stdin")
    parser.add_argument("--script", required=True, help="JSON list of steps")
    args = parser.parse_args()

    steps = json.loads(args.script)
    headers = []
    for h in args.header:
        name, value = h.split(":", 1)
        headers.append((name.strip(), value.strip()))
    tls = None
    if args.url.startswith("wss://"):
        tls = ssl.create_default_context(cafile=args.cafile)
        if args.certfile:
            tls.load_cert_chain(args.certfile, args.keyfile)

    stdin = Stdin()
    extra = {}
    if args.preconnect:
        url = urllib.parse.urlsplit(args.url)
        sock = socket.create_connection((url.hostname, url.port), timeout=STEP_TIMEOUT)
        sock.settimeout(None)
        out("tcp", "connected")
        try:
            await asyncio.wait_for(stdin.line(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            out("timeout", js(["preconnect"]))
            return 3
        extra["sock"] = sock
        if tls is not None:
            extra["server_hostname"] = url.hostname

    try:
        ws = await asyncio.wait_for(
            connect(
                args.url,
                additional_headers=headers,
                origin=args.origin,
                subprotocols=args.subprotocol or None,
                ssl=tls,
                open_timeout=STEP_TIMEOUT,
                close_timeout=STEP_TIMEOUT,
                ping_interval=None,
                max_size=None,
                **extra,
            ),
            STEP_TIMEOUT,
        )
    except InvalidStatus as e:
        out("refused", str(e.response.status_code))
        return 0
    except asyncio.TimeoutError:
        out("timeout", js(["connect"]))
        return 3
    except Exception as e:  # noqa: BLE001 - any other handshake failure is a result, not a crash
        out("failed", type(e).__name__, js(str(e)))
        return 0

    out("open", js(ws.subprotocol))
    for step in steps:
        try:
            going = await asyncio.wait_for(run_step(ws, step, stdin), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            out("timeout", js(step))
            return 3
        if not going:
            break
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    # Do not wait for anything left behind (a stdin pipe reader, an aborted connection).
    os._exit(code)
