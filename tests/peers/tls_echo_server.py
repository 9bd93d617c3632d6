"""Echo WebSocket server over TLS (Python websockets), optionally requiring client certificates.

Usage: tls_echo_server.py --cert PEM --key PEM [--client-ca PEM]

Listens on 127.0.0.1, port 0, and prints `PORT <n>` on stdout once listening. With --client-ca
the TLS handshake requires a client certificate signed by that CA (mutual TLS); the common name
of the client's certificate is then sent as the first text message of each connection
("client CN"). Every message is echoed back unchanged. Runs until killed.
"""

import argparse
import asyncio
import ssl

from websockets.asyncio.server import serve


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="private key (PEM)")
    parser.add_argument("--client-ca", help="require client certificates from this CA (PEM)")
    args = parser.parse_args()

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        tls.verify_mode = ssl.CERT_REQUIRED
        tls.load_verify_locations(args.client_ca)

    async def echo(ws):
        if args.client_ca:
            peer = ws.transport.get_extra_info("peercert") or {}
            cn = next(
                (v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"),
                "",
            )
            await ws.send(f"client {cn}")
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, ssl=tls, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
