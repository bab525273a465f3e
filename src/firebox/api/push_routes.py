"""Where S3-compatible stores and SNS push notifications (triggers/push.py): public routes,
authenticated by the mapping's secret in the path (and SNS's signature), not SigV4."""

from __future__ import annotations

from aiohttp import web

from firebox.api.server import json_response, public
from firebox.triggers.push import Push

PUSH_KEY = web.AppKey("push", Push)


@public
async def receive(request: web.Request) -> web.StreamResponse:
    info = request.match_info
    # Answered only once every invoke it asked for is durably queued.
    queued = await request.app[PUSH_KEY].receive(
        info["kind"],
        info["uuid"],
        info["secret"],
        await request.read(),
        {k.lower(): v for k, v in request.headers.items()},
    )
    return json_response({"queued": queued})


def register(web_app: web.Application, push: Push) -> None:
    web_app[PUSH_KEY] = push
    web_app.router.add_post("/_firebox/push/{kind:s3|sns}/{uuid}/{secret}", receive)
