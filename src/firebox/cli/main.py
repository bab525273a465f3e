"""The `firebox` command: serve and credentials here; deploy, invoke, logs, ls, rm and usage
in commands.py."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from firebox.cli.commands import COMMANDS
from firebox.cli.esm import esm
from firebox.cli.output import fail
from firebox.settings import SettingsError, load_settings


def _settings(**flags: Any) -> Any:
    try:
        return load_settings(flags)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="firebox")
def cli() -> None:
    """Firebox: a self-hosted, AWS Lambda-compatible serverless platform."""


def _raise_open_files_limit() -> None:
    """Every environment holds a few descriptors in the server (its Runtime API listener
    and connections, log pipe, pidfd, control socket): the default soft limit of 1,024
    would run out near 150 environments. Sandboxed functions get Lambda's 1,024 again."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite NOFILE; nr_open is the real ceiling.
        try:
            with open("/proc/sys/fs/nr_open") as fh:
                hard = int(fh.read())
        except (OSError, ValueError):
            return
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:
            logging.getLogger(__name__).warning("could not raise RLIMIT_NOFILE: %s", exc)


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 9000).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where state lives (default ./.firebox).",
)
@click.option(
    "--sandbox",
    type=click.Choice(["process", "unsandboxed"]),
    default=None,
    help="Isolation backend (default process).",
)
@click.option(
    "--allow-unsandboxed",
    is_flag=True,
    default=None,
    help="Development only: allow running functions without isolation.",
)
@click.option(
    "--keepalive",
    "keepalive_s",
    type=float,
    default=None,
    help="Seconds an idle environment is kept warm (default 300).",
)
@click.option(
    "--database-url",
    default=None,
    help="postgresql://… to keep state in PostgreSQL, shared by a fleet (default: SQLite "
    "in the data dir).",
)
@click.option(
    "--code-store-url",
    default=None,
    help="s3://BUCKET[/PREFIX] to keep code in an S3-compatible store (endpoint from "
    "AWS_ENDPOINT_URL_S3; default: files in the data dir).",
)
@click.option("--log-level", default=None, help="debug, info, warning or error.")
@click.option(
    "--role",
    default=None,
    help="Roles of this process: a comma list of api, worker, poller, or all (default).",
)
@click.option(
    "--internal-host",
    default=None,
    help="Address the worker listens on for front ends (default 127.0.0.1).",
)
@click.option(
    "--advertise-host",
    default=None,
    help="Host other nodes reach this worker at (default: --internal-host).",
)
@click.option(
    "--processes",
    type=int,
    default=None,
    help="Server processes on this machine, sharing its ports (default 1).",
)
def serve(**flags: Any) -> None:
    """Start the server."""
    settings = _settings(**flags)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.processes > 1 and settings.process_index < 0:
        _supervise(settings)
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    _raise_open_files_limit()
    from firebox.app import App
    from firebox.sandbox.base import SandboxUnavailable
    from firebox.store import StoreUnavailable

    try:
        app = App(settings)
    except (SandboxUnavailable, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from None

    def ready() -> None:
        if settings.process_index > 0:
            return  # the first of several processes speaks for them
        if "api" not in settings.roles:
            click.echo(f"Firebox ready: roles {', '.join(sorted(settings.roles))}, no API here")
            sys.stdout.flush()
            return
        c = app.credentials
        url = settings.endpoint_url
        backend = app.backend.name if app.backend is not None else "none: no worker role"
        click.echo(f"Firebox listening on {url} (data dir {settings.data_dir}, sandbox {backend})")
        click.echo("boto3:")
        click.echo(
            f"  boto3.client('lambda', endpoint_url='{url}', region_name='{settings.region}',"
        )
        click.echo(f"               aws_access_key_id='{c.access_key_id}',")
        click.echo(f"               aws_secret_access_key='{c.secret_access_key}')")
        click.echo("AWS CLI:")
        click.echo(
            f"  export AWS_ENDPOINT_URL={url} AWS_DEFAULT_REGION={settings.region} "
            f"AWS_ACCESS_KEY_ID={c.access_key_id} "
            f"AWS_SECRET_ACCESS_KEY={c.secret_access_key}"
        )
        sys.stdout.flush()

    try:
        asyncio.run(app.serve_forever(ready))
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {settings.host}:{settings.port}: {exc}"
        ) from None


def _supervise(settings: Any) -> None:
    """Run ``settings.processes`` copies of this command (fleet/supervisor.py)."""
    import os

    from firebox.credentials import load_credentials
    from firebox.fleet.supervisor import Supervisor

    # Made once here, before the processes that share it race to create it.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    load_credentials(settings)
    argv = sys.argv[sys.argv.index("serve") + 1 :] if "serve" in sys.argv else []
    sys.exit(Supervisor(settings.processes, argv, dict(os.environ)).run())


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The server's data dir (default ./.firebox).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
def credentials(as_json: bool, **flags: Any) -> None:
    """Show the server's root credentials (generated on first start)."""
    from firebox.credentials import load_credentials

    settings = _settings(**flags)
    creds = load_credentials(settings, create=False)
    if creds is None:
        fail(f"no credentials in {settings.data_dir}: start the server once with `firebox serve`")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "aws_access_key_id": creds.access_key_id,
                    "aws_secret_access_key": creds.secret_access_key,
                    "region": settings.region,
                    "endpoint_url": settings.endpoint_url,
                },
                indent=2,
            )
        )
        return
    click.echo(f"aws_access_key_id = {creds.access_key_id}")
    click.echo(f"aws_secret_access_key = {creds.secret_access_key}")
    click.echo(f"region = {settings.region}")
    click.echo(f"endpoint_url = {settings.endpoint_url}")


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(esm)


def main() -> None:
    cli(prog_name="firebox")
