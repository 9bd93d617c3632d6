"""Echo WebSocket server (Python websockets, new asyncio API), a third-party peer for the tests.

Usage: ws_server.py [--cert PEM --key PEM] [--token TOKEN]

Listens on 127.0.0.1, port 0 (TLS when --cert is given, else plain ws) and prints `PORT <n>` on
stdout once listening. With --token, upgrades without `Authorization: Bearer TOKEN` get HTTP 401
(default settings otherwise: like most servers, it answers a Close at once). Accepted
connections echo every message back unchanged (text stays text, binary stays binary). Runs until
killed.
"""

import argparse
import asyncio
import http
import ssl

from websockets.asyncio.server import serve


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", help="certificate chain (PEM); omitted: plain ws")
    parser.add_argument("--key", help="private key (PEM)")
    parser.add_argument("--token", help="the accepted bearer token; omitted: no check")
    args = parser.parse_args()

    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)

    expected = f"Bearer {args.token}"

    def check_token(connection, request):
        if args.token is None:
            return None
        if request.headers.get_all("Authorization") != [expected]:
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "bad token\n")
        return None

    async def echo(ws):
        # str in -> text out, bytes in -> binary out.
        async for message in ws:
            await ws.send(message)

    async with serve(
        echo, "127.0.0.1", 0, ssl=tls, process_request=check_token, max_size=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
