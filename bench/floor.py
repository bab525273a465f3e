"""The floor: the server's HTTP stack (aiohttp, on uvloop when installed, as `firebox
serve` runs it) answering a constant, with no function behind it.

    python bench/floor.py PORT

Serves POST and GET on every path with a small JSON body until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

BODY = b'{"ok": true}'


async def constant(request: web.BaseRequest) -> web.Response:
    await request.read()
    return web.Response(
        body=BODY,
        content_type="application/json",
        headers={"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": "floor"},
    )


async def main(port: int) -> None:
    # The low-level server, without router or middleware: the least aiohttp can do.
    server = web.Server(constant, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    listener.close()
    await server.shutdown(0.1)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
