"""The `twofa` command: run the parts, bootstrap workspaces, watch rollouts."""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services import migrate
from services.accounts import teammates as teammate_service
from services.accounts import teammates_export, workspaces
from services.config import ConfigurationError, Settings, get_settings, private_folder
from services.db import unit_of_work
from services.enrollment.state import STATES
from services.errors import TwofaError
from services.policy import service as policy
from workers import cli_guards

# Plain help (no rich panels): flags show no type, values their metavar (SLUG, N), as in git or pip.
cli = typer.Typer(help="twofa: mandatory two-factor authentication for team workspaces.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)
workspace_cli = typer.Typer(help="Workspaces.", no_args_is_help=True, rich_markup_mode=None)
cli.add_typer(db_cli, name="db")
cli.add_typer(workspace_cli, name="workspace")
keys_cli = typer.Typer(help="Encryption keys (TWOFA_ENCRYPTION_KEYS).", no_args_is_help=True,
                      rich_markup_mode=None)
cli.add_typer(keys_cli, name="keys")
apikey_cli = typer.Typer(help="Workspace API keys for host applications.", no_args_is_help=True,
                        rich_markup_mode=None)
cli.add_typer(apikey_cli, name="apikey")
teammate_cli = typer.Typer(help="One teammate, from the server's shell.", no_args_is_help=True,
                          rich_markup_mode=None)
cli.add_typer(teammate_cli, name="teammate")
console = Console()
err = Console(stderr=True)

DEMO_PASSWORD = "correct-horse-battery"  # noqa: S105 - the documented demo login

# Help names each value for what it is (SLUG, EMAIL, N) instead of its Python type.
Slug = Annotated[str, typer.Argument(metavar="SLUG", help="The workspace's short name.",
                                     show_default=False)]
Email = Annotated[str, typer.Argument(metavar="EMAIL", show_default=False)]
Host = Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")]
Port = Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")]


def _settings_checked() -> None:
    try:
        get_settings().check_production()
    except ConfigurationError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def _database_checked() -> None:
    """For commands that read a workspace: settings as above, and a database that exists."""
    _settings_checked()
    settings = get_settings()
    cli_guards.existing_database(settings.resolved_database_url, settings.home_dir)


def _logging() -> None:
    from workers import structured_logs

    if structured_logs.configured(get_settings().log_format):
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic)."""
    _settings_checked()
    migrate.upgrade()
    console.print(f"database at head: {_redacted(get_settings().resolved_database_url)}")


@workspace_cli.command("create")
def workspace_create(
    slug: Slug,
    name: Annotated[str, typer.Option(metavar="NAME", help="Display name")],
    admin_email: Annotated[str, typer.Option(metavar="EMAIL")],
    admin_password: Annotated[str, typer.Option(metavar="PASSWORD")],
) -> None:
    """Create a workspace and its first admin."""
    _database_checked()
    try:
        with unit_of_work() as session:
            ws, admin = workspaces.create(session, slug, name, admin_email, admin_password)
    except TwofaError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc
    console.print(f"created workspace [bold]{ws.slug}[/] with admin {admin.email}")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every secret (TOTP, webhook signing) under the newest key."""
    from services import key_rotation

    _database_checked()
    total = key_rotation.count()
    with Progress(TextColumn("re-encrypting"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("rotate", total=total)
        done = key_rotation.rotate_all(progress=lambda n: bar.advance(task, n))
    console.print(f"re-encrypted {done} rows under the newest key; older keys may now be removed")


@apikey_cli.command("create")
def apikey_create(slug: Slug, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Create an API key for SLUG's host application; the key is printed once."""
    from services.host_checks import api_keys

    _database_checked()
    try:
        with unit_of_work() as session:
            ws = workspaces.get_by_slug(session, slug)
            row, key = api_keys.create(session, ws, name)
    except TwofaError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc
    err.print(f"API key {row.id} ({row.name}) for {slug}; shown once, store it now:")
    print(key)  # alone on stdout, so scripts can capture it


@teammate_cli.command("reset-2fa")
def teammate_reset_2fa(slug: Slug, email: Email) -> None:
    """Turn off EMAIL's 2FA in SLUG and end all their sessions (the way back in for a sole
    admin who lost both device and recovery codes). Recorded as by "operator"."""
    from services.accounts import teammates
    from services.verification import service as verification

    _database_checked()
    try:
        with unit_of_work() as session:
            ws = workspaces.get_by_slug(session, slug)
            teammate = teammates.find_by_email(session, ws, email)
            was_on = verification.operator_reset(session, ws, teammate)
    except TwofaError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc
    if was_on:
        console.print(f"2FA turned off for {teammate.email} in {slug}; their sessions ended. "
                      "They sign in with their password and set up 2FA again.")
    else:
        console.print(f"{teammate.email} in {slug} had no 2FA on; nothing changed.")


@cli.command()
def seed(
    slug: Slug,
    teammates: Annotated[int, typer.Option(min=1, max=1_000_000, metavar="N")],
    password: Annotated[str, typer.Option(metavar="PASSWORD")],
) -> None:
    """Add N active members (member-00001@SLUG.test …). Refused in production."""
    if get_settings().env == "production":
        err.print("[red]error:[/] seed refuses to run with TWOFA_ENV=production")
        raise typer.Exit(2)
    _database_checked()
    with Progress(TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("seed", total=teammates)
        try:
            with unit_of_work() as session:
                ws = workspaces.get_by_slug(session, slug)
                workspaces.seed(session, ws, teammates, password,
                                progress=lambda n: bar.advance(task, n))
        except TwofaError as exc:
            err.print(f"[red]error:[/] {exc.message}")
            raise typer.Exit(1) from exc
    console.print(f"added {teammates} members to [bold]{slug}[/]")


@cli.command()
def rollout(
    slug: Slug,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Follow it live; waits for 2FA to be required, ends when nothing is "
                        "pending")] = False,
) -> None:
    """Show a workspace's 2FA rollout; --watch follows it with a live progress bar."""
    counts, ws = _rollout(slug)
    if not watch:
        console.print(_rollout_line(ws.require_two_factor, ws.policy_version, counts))
        return
    try:
        counts, ws = _follow(slug, counts, ws)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # the operator stopped watching; nothing to undo
    console.print(_rollout_line(ws.require_two_factor, ws.policy_version, counts))


def _follow(slug: str, counts: policy.Rollout,
            ws: workspaces.Workspace) -> tuple[policy.Rollout, workspaces.Workspace]:
    """Wait for a rollout to start (an admin may be about to flip the switch), then show it
    until nothing is pending."""
    if not ws.require_two_factor:
        with console.status(f"2FA is not required in {slug} yet: waiting for an admin to "
                            "require it (Ctrl-C stops)"):
            while not ws.require_two_factor:
                time.sleep(1)
                counts, ws = _rollout(slug)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"rollout v{ws.policy_version}", total=counts.teammates, detail="")
        while True:
            done = counts.teammates - counts.pending
            bar.update(task, completed=done, detail=(
                f"enrolled {counts.enrolled} · invited {counts.invited} · "
                f"failed {counts.failed} · pending {counts.pending}"))
            if counts.pending == 0:
                break
            time.sleep(0.5)
            counts, ws = _rollout(slug)
    return counts, ws


def _rollout(slug: str) -> tuple[policy.Rollout, workspaces.Workspace]:
    _database_checked()
    try:
        with unit_of_work() as session:
            ws = workspaces.get_by_slug(session, slug)
            return policy.rollout(session, ws), ws
    except TwofaError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc


def _rollout_line(required: bool, version: int, c: policy.Rollout) -> str:
    state = "[green]required[/]" if required else "not required"
    return (f"2FA {state} (policy v{version}): {c.teammates} teammates, {c.enrolled} enrolled, "
            f"{c.invited} invited, {c.pending} pending, {c.failed} failed")


class OutputFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


FILTER_VALUES = {"two_factor": ("enabled", "disabled"), "enrollment": STATES, "q": None}


@cli.command("teammates")
def list_teammates(
    slug: Slug,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many rows")] = 200,
    filter_: Annotated[list[str] | None, typer.Option(
        "--filter", metavar="KEY=VALUE",
        help="two_factor=enabled|disabled, enrollment=STATE, q=TEXT (repeatable)")] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Print the teammates with their 2FA and enrollment state (who isn't enrolled yet?)."""
    filters = _parse_filters(filter_ or [])
    _database_checked()
    try:
        with unit_of_work() as session:
            ws = workspaces.get_by_slug(session, slug)
            views, _ = teammate_service.page(session, ws, limit, None, filters)
    except TwofaError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc
    if output is OutputFormat.json:
        print(json.dumps([teammates_export.record(v) for v in views], indent=2))
    elif output is OutputFormat.csv:  # the columns of the console's and the API's export
        sys.stdout.write(teammates_export.line(teammates_export.COLUMNS))
        sys.stdout.writelines(teammates_export.line(teammates_export.cells(v)) for v in views)
    else:
        _print_table(ws, views)


def _parse_filters(pairs: list[str]) -> teammate_service.Filters:
    given: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        allowed = FILTER_VALUES.get(key, ())
        if key not in FILTER_VALUES or (allowed is not None and value not in allowed):
            err.print(f"[red]error:[/] unknown filter {pair!r}; use two_factor=enabled|disabled, "
                      f"enrollment={'|'.join(STATES)} or q=TEXT")
            raise typer.Exit(2)
        given[key] = value
    return teammate_service.Filters(two_factor=given.get("two_factor"),
                                    enrollment=given.get("enrollment"), q=given.get("q"))


def _print_table(ws: workspaces.Workspace, views: list[teammate_service.TeammateView]) -> None:
    table = Table(title=f"{ws.name} ({ws.slug})")
    for column in ("id", "email", "name", "role", "2FA", "enrollment"):
        table.add_column(column)
    colour = {"enrolled": "green", "invited": "cyan", "pending": "yellow", "failed": "red"}
    for v in views:
        t = v.teammate
        table.add_row(str(t.id), t.email, t.name, t.role, "🔒" if t.two_factor_enabled else "·",
                      f"[{colour.get(v.enrollment, 'white')}]{v.enrollment}[/]")
    console.print(table)


@cli.command()
def api(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="One line per request (query values hidden)")] = False,
) -> None:
    """Run the HTTP API (uvicorn, uvloop + httptools)."""
    import uvicorn

    from workers import logs, structured_logs

    _settings_checked()
    settings = get_settings()
    log_config = structured_logs.uvicorn_config(settings.log_format) or logs.uvicorn_log_config()
    # X-Forwarded-For only from the proxies named in TWOFA_FORWARDED_ALLOW_IPS: uvicorn's own
    # default would believe it from 127.0.0.1, i.e. from anyone on the machine.
    proxies = settings.forwarded_allow_ips
    uvicorn.run("services.asgi:app", host=host, port=port, loop="uvloop", http="httptools",
                log_level="info", access_log=access_log, log_config=log_config,
                proxy_headers=bool(proxies), forwarded_allow_ips=",".join(proxies) or None)


class WorkerQueues(enum.StrEnum):
    all = "all"
    invitations = "invitations"
    webhooks = "webhooks"


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", metavar="N", help="Pool processes (default TWOFA_WORKER_CONCURRENCY)")] = None,
    queues: Annotated[WorkerQueues, typer.Option(
        "--queues", "-Q", help="invitations: everything but webhooks (emails, sweeps)")] = WorkerQueues.all,
) -> None:
    """Run a Celery worker (by default on all queues; production runs webhook workers apart).
    Exits 0 after a warm shutdown (SIGTERM), 1 when Celery stopped on an unrecoverable error."""
    _settings_checked()
    from workers import logs, structured_logs
    from workers import metrics as worker_metrics

    worker_metrics.prepare(get_settings().worker_metrics_port)  # before prometheus_client loads
    structured_logs.prepare_worker(get_settings().log_format)
    from workers import tracing

    tracing.prepare_worker()  # OTEL_* variables: traces from each pool process
    from workers.celery_app import app
    from workers.celery_app import queues as worker_queues

    logs.quiet_periodic_tasks()
    settings = get_settings()
    which = WorkerQueues(queues).value
    from workers import heartbeat

    heartbeat.install(which)  # /metrics counts live workers; a stall shows in /readyz
    status = _run_celery(app, ["worker", "--loglevel=INFO", "-Q", ",".join(worker_queues(settings, which)),
                               "-c", str(concurrency or settings.worker_concurrency), "--without-gossip",
                               "--without-mingle", "-n", f"twofa-{which}-{os.getpid()}@%h"])
    if status:
        raise typer.Exit(status)


def _run_celery(app: object, argv: list[str]) -> int:
    """Run the `celery` command line on `app` and return its exit status.

    As `app.start` does, except that it keeps the status: with `standalone_mode=False`
    click returns the worker's `ctx.exit(code)` instead of raising it, and both
    `app.worker_main` and `app.start` drop that return value, so a worker stopped by an
    unrecoverable error exited 0 and `Restart=on-failure` never restarted it.
    """
    from celery.bin.celery import celery

    celery.params[0].default = app
    try:
        return int(celery.main(args=argv, standalone_mode=False) or 0)
    finally:
        celery.params[0].default = None


@cli.command()
def relay() -> None:
    """Run the outbox relay (and the periodic rollout sweep)."""
    _settings_checked()
    _logging()
    import signal
    import threading

    from workers import relay as relay_loop
    from workers import tracing
    from workers.celery_app import app

    tracing.start_relay(app)  # OTEL_* variables: before the first engine, whose queries it traces
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        # Not stop.set() here: the handler runs in the main thread, which may be inside
        # stop.wait() holding the event's lock, and set() would wait for it for ever.
        threading.Thread(target=stop.set, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    relay_loop.run(app, stop)


@cli.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Create a demo workspace")] = False,
) -> None:
    """Run everything on one machine: API, workers (invitations, webhooks), relay, sweep, and a
    mail catcher."""
    from workers import mailcatcher
    from workers.processes import Supervisor

    _settings_checked()
    settings = get_settings()
    cli_guards.free_port(host, port, "the API", "--port")
    if not settings.smtp_url:
        cli_guards.free_port("127.0.0.1", settings.mailcatcher_port, "the mail catcher",
                             "TWOFA_MAILCATCHER_PORT")
    home = settings.home_dir
    private_folder(home)  # keys, database, caught mail: owner only, even if it existed
    settings.keys()  # generate the embedded key once, before the children race for it
    migrate.upgrade()
    if demo:
        _demo_workspace()
    env = dict(os.environ, TWOFA_HOME=str(home))
    public_url = _public_url(settings, host, port)
    env["TWOFA_PUBLIC_URL"] = public_url
    catcher = None
    if not settings.smtp_url:
        catcher = mailcatcher.start(settings.mail_dir, settings.mailcatcher_port)
        env["TWOFA_SMTP_URL"] = settings.resolved_smtp_url
    supervisor = Supervisor(env)
    # Webhooks get a worker of their own, as production runs them: on a worker that also
    # sends a rollout's invitations, events waited minutes behind the batches
    # (docs/measurements.md, event latency "all queues").
    supervisor.spawn("worker", ["worker", "--queues", "invitations"])
    supervisor.spawn("webhooks", ["worker", "--queues", "webhooks", "--concurrency", "1"],
                     **_next_metrics_port(settings))
    supervisor.spawn("relay", ["relay"])
    supervisor.spawn("api", ["api", "--host", host, "--port", str(port), "--access-log"])
    console.print(_banner(settings, host, port, public_url, caught=catcher is not None, demo=demo))
    died = supervisor.wait()
    console.print("stopping…" if died is None else f"[red]{died} exited; stopping the rest[/]")
    supervisor.stop()
    if catcher:
        catcher.stop()
    if died is not None:
        raise typer.Exit(1)


def _next_metrics_port(settings: Settings) -> dict[str, str]:
    """The webhook worker's /metrics, one port above the main worker's (when that is set),
    checked now like the API's port: a clash is said before any process starts."""
    port = settings.worker_metrics_port
    if not port:
        return {}
    if port == 65535:
        raise cli_guards.CliError("TWOFA_WORKER_METRICS_PORT=65535 leaves no port for the "
                                  "webhook worker's metrics (the next one); choose a lower one.")
    cli_guards.free_port("127.0.0.1", port + 1, "the webhook worker's metrics",
                         "TWOFA_WORKER_METRICS_PORT")
    return {"TWOFA_WORKER_METRICS_PORT": str(port + 1)}


def _public_url(settings: Settings, host: str, port: int) -> str:
    """TWOFA_PUBLIC_URL when set; otherwise the address `up` listens on, so the links in
    emails follow --port. A loopback or wildcard host is named `localhost`: browsers refuse
    an IP address as a WebAuthn relying party, so security keys need a name."""
    if "public_url" in settings.model_fields_set:
        return settings.public_url
    loopback = ("0.0.0.0", "::", "", "127.0.0.1", "::1", "localhost")  # noqa: S104 - compared, not bound
    shown = "localhost" if host in loopback else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"


def _banner(settings: Settings, host: str, port: int, public_url: str, *, caught: bool,
            demo: bool) -> Panel:
    smtp = settings.resolved_smtp_url
    if caught:
        mail = f"{_redacted(smtp)}, caught in {settings.mail_dir} (one .eml per message)"
    else:
        mail = _redacted(smtp)
    broker = _redacted(settings.resolved_broker_url)
    if settings.is_embedded_broker:
        broker += f" ({settings.broker_folder})"
    lines = [
        f"open         {public_url}  (the console; security keys need this name)",
        f"API          http://{host}:{port}  (OpenAPI: /docs, health: /healthz)",
        f"emails link  {public_url}",
        f"database     {_redacted(settings.resolved_database_url)}",
        f"broker       {broker}",
        f"mail (SMTP)  {mail}",
        *([f"demo         workspace 'demo', admin@demo.test / {DEMO_PASSWORD}"] if demo else []),
        "Ctrl-C stops everything.",
    ]
    return Panel.fit("\n".join(lines), title="twofa up")


def _demo_workspace() -> None:
    with unit_of_work() as session:
        try:
            workspaces.get_by_slug(session, "demo")
            return
        except TwofaError:
            pass
        ws, _ = workspaces.create(session, "demo", "Demo Team", "admin@demo.test", DEMO_PASSWORD)
        workspaces.seed(session, ws, 25, DEMO_PASSWORD)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        cli()
    except cli_guards.CliError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SQLAlchemyError as exc:  # unreachable or not migrated: one line, not a traceback
        problem = cli_guards.database_error(get_settings().resolved_database_url, exc)
        err.print(f"[red]error:[/] {problem}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
