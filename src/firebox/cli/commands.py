"""The developer commands: deploy, invoke, logs, ls, rm, usage.

Each talks to a server through boto3 (imported inside the command, so that `firebox serve`
and `--help` stay fast), prints for people by default and JSON with --json.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from firebox.cli.output import echo_json, parse_since, progress, size, table, timestamp

if TYPE_CHECKING:
    from firebox.cli.client import Connection

DEFAULT_ROLE = "arn:aws:iam::{account}:role/firebox-function"
# Folders a deploy never ships: VCS metadata, caches, Firebox's own state.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".firebox",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--endpoint-url, --profile, --region, --data-dir, --json on every client command."""

    @click.option(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="Firebox server (default: AWS_ENDPOINT_URL, else the local server).",
    )
    @click.option("--profile", default=None, help="AWS profile for credentials and region.")
    @click.option(
        "--region",
        default=None,
        help="Region (default: from the profile or AWS_DEFAULT_REGION, else the server's).",
    )
    @click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Local server's data dir, for its credentials (default ./.firebox).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
    @functools.wraps(fn)
    def wrapper(
        endpoint_url: str | None,
        profile: str | None,
        region: str | None,
        data_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        from firebox.cli.client import connect

        conn = connect(endpoint_url, profile, region, data_dir)
        return fn(conn, **kwargs)

    return wrapper


def _guard(conn: Connection) -> Any:
    from firebox.cli.client import aws_errors

    return aws_errors(conn)


# --- deploy ---------------------------------------------------------------------------


def package(directory: Path) -> tuple[bytes, int]:
    """The folder as a zip, keeping file modes (a `bootstrap` must stay executable)."""
    buf = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                path = Path(root) / name
                if not path.is_file():
                    continue
                arcname = path.relative_to(directory).as_posix()
                zf.write(path, arcname)
                count += 1
    return buf.getvalue(), count


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", "-n", required=True, help="Function name.")
@click.option("--runtime", "-r", default=None, help="Runtime, e.g. python3.12 (needed to create).")
@click.option("--handler", default=None, help="Handler, e.g. app.handler (needed to create).")
@click.option("--memory", type=int, default=None, help="Memory in MB.")
@click.option("--timeout", type=int, default=None, help="Timeout in seconds.")
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Environment variable (repeatable); replaces the function's set.",
)
@click.option("--role", default=None, help="Execution role ARN (default: a placeholder).")
@click.option("--description", default=None, help="Description.")
@click.option("--publish", is_flag=True, help="Publish a version after deploying.")
@connection_options
def deploy(
    conn: Connection,
    directory: Path,
    name: str,
    runtime: str | None,
    handler: str | None,
    memory: int | None,
    timeout: int | None,
    env_pairs: tuple[str, ...],
    role: str | None,
    description: str | None,
    publish: bool,
    as_json: bool,
) -> None:
    """Zip DIRECTORY and create or update function NAME, then wait until it is active."""
    env = _parse_env(env_pairs)
    data, count = package(directory)
    progress(f"Packaged {directory} ({count} files, {size(len(data))} zipped)")
    lam = conn.client("lambda")
    config: dict[str, Any] = {}
    if runtime:
        config["Runtime"] = runtime
    if handler:
        config["Handler"] = handler
    if memory:
        config["MemorySize"] = memory
    if timeout:
        config["Timeout"] = timeout
    if env is not None:
        config["Environment"] = {"Variables": env}
    if role:
        config["Role"] = role
    if description is not None:
        config["Description"] = description
    waiter_config = {"Delay": 1, "MaxAttempts": 300}
    with _guard(conn):
        try:
            lam.get_function_configuration(FunctionName=name)
            exists = True
        except lam.exceptions.ResourceNotFoundException:
            exists = False
        if not exists:
            if not runtime or not handler:
                raise click.UsageError(
                    f"function {name} does not exist yet: "
                    "--runtime and --handler are needed to create it"
                )
            config.setdefault("Role", DEFAULT_ROLE.format(account=_account(lam)))
            progress(f"Creating {name} ({runtime}, {handler})")
            lam.create_function(
                FunctionName=name, Code={"ZipFile": data}, Publish=publish, **config
            )
        else:
            progress(f"Updating the code of {name}")
            lam.update_function_code(FunctionName=name, ZipFile=data)
            lam.get_waiter("function_updated_v2").wait(
                FunctionName=name, WaiterConfig=waiter_config
            )
            if config:
                progress(f"Updating the configuration of {name} ({', '.join(config)})")
                lam.update_function_configuration(FunctionName=name, **config)
                lam.get_waiter("function_updated_v2").wait(
                    FunctionName=name, WaiterConfig=waiter_config
                )
        progress(f"Waiting until {name} is active")
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=waiter_config)
        version = None
        if publish and exists:
            version = lam.publish_version(FunctionName=name)["Version"]
        final = lam.get_function_configuration(FunctionName=name)
    if as_json:
        echo_json({k: v for k, v in final.items() if k != "ResponseMetadata"})
        return
    click.echo(
        f"{'Updated' if exists else 'Created'} {final['FunctionName']}: "
        f"{final.get('Runtime', '-')}, {final.get('Handler', '-')}, "
        f"{final.get('MemorySize')} MB, state {final.get('State', 'Active')}"
    )
    click.echo(f"  arn: {final['FunctionArn']}")
    click.echo(f"  code: {final['CodeSha256']} ({size(final['CodeSize'])})")
    if version:
        click.echo(f"  published version {version}")


def _account(lam: Any) -> str:
    """The account id from the server's ARNs (any function's), else the default one."""
    page = lam.list_functions(MaxItems=1).get("Functions", [])
    if page:
        return str(page[0]["FunctionArn"].split(":")[4])
    return "000000000000"


# --- invoke ---------------------------------------------------------------------------


def _payload(raw: str | None) -> bytes:
    if raw is None:
        return b"{}"
    if raw.startswith("@"):
        source = raw[1:]
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {source}: {exc.strerror}", param_hint="--payload"
            ) from None
    else:
        data = raw.encode()
    try:
        json.loads(data or b"{}")
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    return data


@click.command()
@click.argument("name")
@click.option(
    "--payload",
    "-p",
    default=None,
    metavar="JSON|@FILE",
    help="Event as JSON, or @file to read it (@- for stdin). Default {}.",
)
@click.option(
    "--async",
    "is_async",
    is_flag=True,
    help="Queue the event (InvocationType=Event) and return at once.",
)
@click.option("--qualifier", "-q", default=None, help="Version or alias.")
@click.option("--no-logs", is_flag=True, help="Do not print the log tail.")
@connection_options
def invoke(
    conn: Connection,
    name: str,
    payload: str | None,
    is_async: bool,
    qualifier: str | None,
    no_logs: bool,
    as_json: bool,
) -> None:
    """Invoke function NAME and print its result and log tail."""
    data = _payload(payload)
    lam = conn.client("lambda")
    kwargs: dict[str, Any] = {"FunctionName": name, "Payload": data}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    with _guard(conn):
        if is_async:
            resp = lam.invoke(InvocationType="Event", **kwargs)
            rid = resp["ResponseMetadata"]["RequestId"]
            if as_json:
                echo_json({"StatusCode": resp["StatusCode"], "RequestId": rid})
            else:
                click.echo(f"queued {name} (status {resp['StatusCode']}, request id {rid})")
            return
        resp = lam.invoke(LogType="Tail", **kwargs)
        body = resp["Payload"].read()
    log_text = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    try:
        result: Any = json.loads(body) if body else None
    except ValueError:
        result = body.decode(errors="replace")
    error = resp.get("FunctionError")
    if as_json:
        echo_json(
            {
                "StatusCode": resp["StatusCode"],
                "RequestId": resp["ResponseMetadata"]["RequestId"],
                "ExecutedVersion": resp.get("ExecutedVersion"),
                "FunctionError": error,
                "Payload": result,
                "Log": log_text,
            }
        )
    else:
        if log_text and not no_logs:
            click.echo(click.style(log_text.rstrip("\n"), dim=True), err=True)
        click.echo(json.dumps(result, indent=2) if not isinstance(result, str) else result)
    if error:
        if not as_json:
            click.echo(f"error: the function failed ({error})", err=True)
        raise SystemExit(1)


# --- logs -----------------------------------------------------------------------------


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "timestamp": event["timestamp"],
                    "logStreamName": event["logStreamName"],
                    "message": event["message"],
                }
            )
        )
    else:
        ts = click.style(timestamp(event["timestamp"]), fg="green")
        click.echo(f"{ts} {event['message'].rstrip()}")


@click.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option(
    "--since",
    "-s",
    default="10m",
    show_default=True,
    help="How far back: 30s, 10m, 2h, 1d, or an ISO 8601 time.",
)
@click.option(
    "--filter",
    "pattern",
    default=None,
    help="CloudWatch filter pattern, e.g. ERROR or '{ $.level = \"error\" }'.",
)
@connection_options
def logs(
    conn: Connection, name: str, follow: bool, since: str, pattern: str | None, as_json: bool
) -> None:
    """Print the logs of function NAME (its log group /aws/lambda/NAME)."""
    start = parse_since(since)
    group = name if name.startswith("/") else f"/aws/lambda/{name}"
    client = conn.client("logs", read_timeout_s=60)
    seen: set[str] = set()
    with _guard(conn):
        try:
            while True:
                start = _print_new(client, group, start, pattern, seen, as_json, follow)
                if not follow:
                    return
                time.sleep(1.0)
        except KeyboardInterrupt:
            return


def _print_new(
    client: Any,
    group: str,
    start: int,
    pattern: str | None,
    seen: set[str],
    as_json: bool,
    follow: bool,
) -> int:
    """Print events from ``start`` on that were not printed yet; the next start."""
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start, "interleaved": True}
    if pattern:
        kwargs["filterPattern"] = pattern
    newest = start
    fresh: set[str] = set()
    try:
        for page in client.get_paginator("filter_log_events").paginate(**kwargs):
            for event in page["events"]:
                if event["eventId"] in seen:
                    continue
                _print_event(event, as_json)
                newest = max(newest, event["timestamp"])
                fresh.add(event["eventId"])
    except client.exceptions.ResourceNotFoundException:
        if not follow:
            click.echo(f"no logs yet: log group {group} does not exist", err=True)
        return start
    # Next time start at the newest timestamp (inclusive): remember what it already showed.
    if newest > start:
        seen.clear()
    seen |= fresh
    return newest


# --- ls, rm ---------------------------------------------------------------------------


@click.command(name="ls")
@connection_options
def ls(conn: Connection, as_json: bool) -> None:
    """List functions."""
    lam = conn.client("lambda")
    with _guard(conn):
        functions = [
            f for page in lam.get_paginator("list_functions").paginate() for f in page["Functions"]
        ]
    if as_json:
        echo_json(functions)
        return
    if not functions:
        click.echo("no functions", err=True)
        return
    rows = [
        (
            f["FunctionName"],
            f.get("Runtime", "-"),
            f.get("Handler", "-"),
            f.get("MemorySize", "-"),
            f.get("Timeout", "-"),
            str(f.get("LastModified", ""))[:19].replace("T", " "),
        )
        for f in sorted(functions, key=lambda f: f["FunctionName"])
    ]
    table(("NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "MODIFIED"), rows, right=(3, 4))


@click.command()
@click.argument("name")
@click.option("--qualifier", "-q", default=None, help="Delete only this version.")
@connection_options
def rm(conn: Connection, name: str, qualifier: str | None, as_json: bool) -> None:
    """Delete function NAME (or one version of it)."""
    lam = conn.client("lambda")
    kwargs: dict[str, Any] = {"FunctionName": name}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    with _guard(conn):
        lam.delete_function(**kwargs)
    what = f"{name}:{qualifier}" if qualifier else name
    if as_json:
        echo_json({"deleted": what})
    else:
        click.echo(f"deleted {what}")


# --- usage ----------------------------------------------------------------------------


@click.command()
@click.option(
    "--since",
    default=None,
    metavar="YYYY-MM-DD",
    help="First day (UTC); default the first of this month.",
)
@click.option("--until", default=None, metavar="YYYY-MM-DD", help="Last day (UTC).")
@click.option("--function", "function", default=None, help="Only this function.")
@click.option("--daily", is_flag=True, help="One row per function per day.")
@connection_options
def usage(
    conn: Connection,
    since: str | None,
    until: str | None,
    function: str | None,
    daily: bool,
    as_json: bool,
) -> None:
    """Show metered usage: requests, GB-seconds and estimated cost per function."""
    since = since or datetime.now(UTC).date().replace(day=1).isoformat()
    query = {"since": since}
    if until:
        query["until"] = until
    if function:
        query["function"] = function
    report = conn.signed_get("/_firebox/usage", query)
    if as_json:
        echo_json(report)
        return
    prices = report["prices"]
    click.echo(
        f"Usage since {report['since']}"
        + (f" until {report['until']}" if report.get("until") else "")
        + f" (${_price(prices['per_gb_second'])}/GB-s, "
        f"${_price(prices['per_million_requests'])}/1M requests)"
    )
    rows: list[tuple[Any, ...]]
    if daily:
        headers: tuple[str, ...] = ("DATE", "FUNCTION", "REQUESTS", "GB-SECONDS", "COST (USD)")
        rows = [
            (
                d["date"],
                d["function"],
                d["requests"],
                f"{d['gb_seconds']:.6f}",
                f"{d['cost_usd']:.8f}",
            )
            for d in report["days"]
        ]
        total_row: tuple[Any, ...] = ("TOTAL", "")
        right = (2, 3, 4)
    else:
        headers = ("FUNCTION", "REQUESTS", "GB-SECONDS", "COST (USD)")
        rows = [
            (f["function"], f["requests"], f"{f['gb_seconds']:.6f}", f"{f['cost_usd']:.8f}")
            for f in report["functions"]
        ]
        total_row = ("TOTAL",)
        right = (1, 2, 3)
    t = report["total"]
    rows.append((*total_row, t["requests"], f"{t['gb_seconds']:.6f}", f"{t['cost_usd']:.8f}"))
    table(headers, rows, right=right)


@click.command()
@connection_options
def queues(conn: Connection, as_json: bool) -> None:
    """Show the asynchronous event queue: depth, oldest event and dead letters per function."""
    stats = conn.signed_get("/_firebox/queues")
    if as_json:
        echo_json(stats)
        return
    if not stats:
        click.echo("no queued events", err=True)
        return
    rows = [
        (
            name,
            s.get("depth", 0),
            s.get("in_flight", 0),
            f"{s.get('oldest_age_s') or 0:.1f}",
            s.get("dead_lettered", 0),
        )
        for name, s in sorted(stats.items())
    ]
    table(
        ("FUNCTION", "QUEUED", "IN FLIGHT", "OLDEST (S)", "DEAD LETTERS"), rows, right=(1, 2, 3, 4)
    )


def _price(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".")


COMMANDS = (deploy, invoke, logs, ls, rm, usage, queues)
