#!/usr/bin/env python3
"""Write the seed inputs in fuzz/seeds/<target>/ (run from anywhere; see docs/fuzzing.md).

Each decoder input starts with the option bytes its target reads (fuzz/src/lib.rs, Cursor):
max size = selector byte + u16 (selector % 4 != 0: 64 + v % 4033), then the target's own
choices, then 4 chunk-size bytes (0 = everything left), then the stream itself.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def max_size(n):
    assert 64 <= n <= 4096
    return bytes([1]) + struct.pack("<H", n - 64)


CHUNKS = bytes([3, 7, 0, 1])

# lines / nul: max, mode, flags (1 base64, 2 split-long, 4 jsonrpc), policy (0 space,
# 1 escape, 2 keep), prefix selector (+1 byte per prefix), chunks.
for target, sep in (("decode_lines", b"\n"), ("decode_nul", b"\0")):
    put(target, "plain", max_size(128) + bytes([0, 0, 0, 0]) + CHUNKS
        + sep.join([b"hello", b"w\xc3\xb6rld\r", b"", b"\xff\xfe", b"last"]))
    # both prefixes (T: = pool 0, B: = pool 1), base64 + escape
    put(target, "prefixes", max_size(256) + bytes([0, 1, 1, 3, 0, 1]) + CHUNKS
        + sep.join([b"T:hi\\nthere", b"B:AAEK/w==", b"T:B:x", b"plain", b""]))
    put(target, "split_long", max_size(64) + bytes([0, 2, 0, 0]) + CHUNKS
        + b"x" * 300 + sep + "\u20ac".encode() * 40 + sep)
put("decode_lines", "jsonrpc", max_size(512) + bytes([0, 4, 0, 0]) + CHUNKS
    + b'Page.navigate {"url":"http://x"}\n\nadd 1 2 three\nping\n')

put("decode_webfs", "two", max_size(320) + bytes([0]) + CHUNKS
    + b"t 00000000000000000005hellob 00000000000000000002\x00\xff")
put("decode_length_prefixed", "two", max_size(320) + bytes([0]) + CHUNKS
    + b"\x80\x00\x00\x02hi\x00\x00\x00\x01\x01\x80\x00\x00\x00")
put("decode_raw", "bytes", max_size(64) + bytes([1]) + CHUNKS + bytes(range(256)))
put("decode_jsonl", "all_types", max_size(256) + bytes([1]) + CHUNKS + b"\n".join([
    b'{"type":"text","data":"a\\"b\\n"}',
    b'{"type":"binary","data":"AP8="}',
    b'',
    b'{"type":"ping","data":"eA=="}',
    b'{"type":"pong"}',
    b'{"type":"close","code":4000,"reason":"r"}',
]))


# roundtrip: max, framing (0 webfs, 1 lp, 2 jsonl, 3 lines, 4 nul), mode, flags (1 base64,
# 2 split-long, 4 jsonl-events), prefix pair (bit 7: use pair n % 6), chunks; then messages:
# kind (0/1 text, 2 binary, 3 ping/pong), u16 length (% (max + 1)), bytes.
def msg(kind, data):
    return bytes([kind]) + struct.pack("<H", len(data)) + data


MSGS = (msg(0, "h\u00e9llo\n\\\r\0".encode()) + msg(2, b"\x00\x01\n\xff") + msg(3, b"pi")
        + msg(0, b"") + msg(2, b"B:not binary"))
for framing in range(5):
    put("roundtrip", f"framing{framing}", max_size(200) + bytes([framing, 0, 5, 0x80])
        + CHUNKS + MSGS)

# handshake: option byte (1 protocols, 2 origin, 4 x-api-key, 8 token, 16 path /chat,
# 32 at capacity), then the request.
REQ = (b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
       b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       b"Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\nX-Api-Key: k3y\r\n"
       b"Authorization: Bearer s3cret-t0ken\r\nSec-WebSocket-Protocol: chat, other\r\n\r\n")
put("handshake", "plain", b"\x00" + REQ)
put("handshake", "strict", b"\x1f" + REQ)
put("handshake", "capacity", b"\x3f" + REQ)
put("handshake", "partial", b"\x00" + REQ[:60])
