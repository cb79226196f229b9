#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed one-way time: a model of the distance to Firestore.

    delay_proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --delay-ms 5

With `--delay-ms 5` each direction waits 5 ms, so a round trip costs 10 ms more, as it would across a
region; bandwidth is not limited and byte order is kept. A client that opens a new connection per request
pays the delay for the handshake too — which is the point: kept-alive connections matter at a distance.
Prints "ready" on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forwards what `reader` yields to `writer`, each chunk `delay` seconds after it arrived."""
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--delay-ms", type=float, default=5.0)
    args = p.parse_args()
    lhost, lport = args.listen.rsplit(":", 1)
    uhost, uport = args.upstream.rsplit(":", 1)
    delay = args.delay_ms / 1000

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2 * delay)  # the handshake: SYN there, SYN-ACK back
        try:
            up_r, up_w = await asyncio.open_connection(uhost, int(uport))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, up_w, delay), pump(up_r, client_w, delay))

    server = await asyncio.start_server(handle, lhost, int(lport))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
