"""GET /_firebox/usage?since=YYYY-MM-DD[&until=YYYY-MM-DD][&function=NAME]: metered usage
as JSON (signed, like the Lambda API)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from aiohttp import web

from firebox.api.server import json_response
from firebox.errors import InvalidParameterValue
from firebox.observe.metering import Meter

METER_KEY = web.AppKey("meter", Meter)


def _date(raw: str | None, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a date as YYYY-MM-DD, got {raw!r}") from None


async def usage(request: web.Request) -> web.Response:
    meter = request.app[METER_KEY]
    # Default: the current calendar month, as a bill would show it.
    since = _date(request.query.get("since"), "since") or datetime.now(UTC).date().replace(day=1)
    until = _date(request.query.get("until"), "until")
    if until is not None and until < since:
        raise InvalidParameterValue("until must not be before since")
    function = request.query.get("function") or None
    return json_response(await meter.report(since, until, function))


def register(web_app: web.Application, meter: Meter) -> None:
    web_app[METER_KEY] = meter
    web_app.router.add_get("/_firebox/usage", usage)
