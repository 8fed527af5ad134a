"""``roadwatch central ...`` subcommands (the work is imported when a command runs)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from roadwatch import cli_args

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from central.records import RegisteredNode
    from central.settings import Settings
    from edge.identity import KeyPairFiles

ROLES = ("officer", "supervisor", "admin", "ioc")


def cli_actor() -> str:
    """Who the audit log names for an action taken at central's command line: ``cli:``
    and the account that ran it (``cli`` alone where the system cannot tell)."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "cli"
    return f"cli:{user}"[:64]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    central = sub.add_parser(
        "central",
        help="run the central service and manage its users and nodes",
        description="Central service. Settings come from ROADWATCH_* variables "
        "(ROADWATCH_DATABASE_URL, ROADWATCH_SECRET_KEY, ROADWATCH_MQTT_HOST, ...); "
        "without them it uses SQLite and an evidence folder under ./var/central.",
    )
    csub = central.add_subparsers(dest="central_command", metavar="SUBCOMMAND", required=True)

    serve = csub.add_parser("serve", help="serve the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=cli_args.port, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--with-ingest", action="store_true", help="also run the MQTT ingest in this process"
    )
    serve.add_argument("--workers", type=int, default=1, help="HTTP worker processes (default 1)")
    serve.set_defaults(func=_serve)

    ingest = csub.add_parser("ingest", help="run the MQTT ingest (violations, traffic, status)")
    ingest.add_argument(
        "--metrics-port", type=int, default=None, metavar="PORT",
        help="serve the ingest's Prometheus counters at http://HOST:PORT/metrics (they are"
        " not in the API's /metrics when the ingest runs as its own process)",
    )  # fmt: skip
    ingest.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST",
        help="address for --metrics-port (default 127.0.0.1: this machine only)",
    )  # fmt: skip
    ingest.set_defaults(func=_ingest)

    mig = csub.add_parser(
        "migrate",
        help="apply database migrations (or go back to a revision) and exit",
        description="Brings the database to the newest revision, or to the one --to names. "
        "Going back drops what the migrations in between added (docs/central.md, Rolling "
        "back): stop every serve and ingest first, and add --yes.",
    )
    mig.add_argument(
        "--to", default="head", metavar="REV",
        help="a revision: its file name under central/migrations/versions/ without .py"
        " (0015_status_received), its 4-digit number (0015), or head (the default)",
    )  # fmt: skip
    mig.add_argument(
        "--yes", action="store_true", help="go back to an older revision, dropping data"
    )
    mig.set_defaults(func=_migrate)

    parts = csub.add_parser(
        "partitions",
        help="monthly partitions of violations (PostgreSQL)",
        description="On PostgreSQL violations are partitioned by UTC month of the violation "
        "time; rows of a month without its partition wait in violations_default until "
        "'ensure' makes it and moves them there. migrate, serve and ingest (once a day) "
        "ensure too. SQLite is not partitioned: both commands say so and change nothing.",
    )
    psub = parts.add_subparsers(dest="partitions_command", metavar="SUBCOMMAND", required=True)
    ensure = psub.add_parser(
        "ensure",
        help="make this month's partition, the next ones and those of months waiting in default",
    )
    ensure.add_argument(
        "--months-ahead", type=int, default=3, help="months after this one (default 3)"
    )
    ensure.set_defaults(func=_partitions_ensure)
    plist = psub.add_parser("list", help="each partition with its bounds and estimated rows")
    plist.set_defaults(func=_partitions_list)

    node = csub.add_parser("node", help="the registry of edge nodes")
    nsub = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    add = nsub.add_parser(
        "add",
        help="register a node's public key and print its upload token",
        description="Registers the node's Ed25519 public key (from `roadwatch edge keygen`) "
        "and prints its evidence upload token once; central keeps only the token's hash.",
    )
    add.add_argument("--site", required=True)
    add.add_argument("--node", required=True)
    add.add_argument("--public-key", required=True, type=Path, metavar="node.pub")
    add.set_defaults(func=_node_add)

    creds = nsub.add_parser(
        "credentials",
        help="give a node a new upload token and broker password (the old ones stop working)",
        description="Prints a new evidence upload token and broker password for the node,"
        " once; central keeps only their hashes. The old upload token is refused at once;"
        " the old broker password once the broker's files are written again"
        " (`roadwatch central broker-files`) and the broker has reloaded them. For a box that"
        " may be in other hands (revoke its signing keys too: `central node key revoke`) or"
        " credentials that leaked. The node keeps its outbox: give it the new ones and"
        " restart it, and what it holds is delivered.",
    )
    creds.add_argument("--site", required=True)
    creds.add_argument("--node", required=True)
    creds.set_defaults(func=_node_credentials)

    key = nsub.add_parser(
        "key",
        help="a node's signing keys: list, add a new one (rotation), revoke one",
        description="A node may have several keys: what it signs with any key in force is"
        " taken. Add the new key before the node switches to it; revoke a key once the node"
        " runs with the new one and `roadwatch edge outbox` there shows no violation pending"
        " or awaiting a receipt, or at once when it may be in other hands (a box stolen):"
        " events signed with a revoked key are refused (quarantined as revoked_key) within a"
        " minute in every ingest, their node is told so and keeps them as refused instead of"
        " sending them again, and the cases it signed before are flagged and cannot be"
        " confirmed nor their notice issued.",
    )
    ksub = key.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    klist = ksub.add_parser("list", help="the node's keys with their fingerprints and state")
    kadd = ksub.add_parser("add", help="add a new public key for the node")
    kadd.add_argument("--public-key", required=True, type=Path, metavar="node.pub")
    krevoke = ksub.add_parser("revoke", help="revoke one of the node's keys")
    krevoke.add_argument("--fingerprint", required=True, help="the key's fingerprint (16+ hex)")
    krevoke.add_argument("--reason", required=True, help="why (kept with the key, audited)")
    krevoke.add_argument(
        "--since", type=_zoned_time, metavar="TIME",
        help="revoked from this time (ISO, with zone; default now): the cases central"
        " received from then on are flagged. For a box stolen: when it was last known safe",
    )  # fmt: skip
    for each in (klist, kadd, krevoke):
        each.add_argument("--site", required=True)
        each.add_argument("--node", required=True)
    klist.set_defaults(func=_node_key_list)
    kadd.set_defaults(func=_node_key_add)
    krevoke.set_defaults(func=_node_key_revoke)

    order = nsub.add_parser(
        "status-order",
        help="the position of the newest status taken from a node: reset it",
        description="Central refuses a status placed before the newest one it took from the"
        " node (quarantined as replayed). A node put back to a version that sends statuses"
        " without their position, or whose last session central holds was begun by a wrong"
        " clock, has every status refused so: reset the position held and the node's next"
        " status is taken, whatever its position.",
    )
    osub = order.add_subparsers(dest="order_command", metavar="SUBCOMMAND", required=True)
    oreset = osub.add_parser("reset", help="forget the position held: the next status is taken")
    oreset.add_argument("--site", required=True)
    oreset.add_argument("--node", required=True)
    oreset.set_defaults(func=_node_status_order_reset)

    files = csub.add_parser(
        "broker-files",
        help="write Mosquitto's password and ACL files (and TLS files) from the node registry",
        description="Every registered node gets a broker account that may publish only under "
        "its own topic prefix; central's account (ROADWATCH_MQTT_USERNAME, default 'central', "
        "with ROADWATCH_MQTT_PASSWORD) reads everything and writes config and receipts.",
    )
    files.add_argument("--out", type=Path, required=True, help="folder for passwd, acl, certs/")
    files.add_argument(
        "--tls-host", action="append", metavar="HOST",
        help="also write a private CA and a broker certificate for this host name or address",
    )  # fmt: skip
    files.add_argument(
        "--signal-controller", action="append", metavar="SITE:PASSWORD_FILE", default=[],
        help="a broker account signal.SITE for the site's signal controllers, with the "
        "password in PASSWORD_FILE: it may write only the site's signal topics",
    )  # fmt: skip
    files.set_defaults(func=_broker_files)

    config = csub.add_parser("config", help="push camera and scene configs to edge nodes")
    cfsub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    keygen = cfsub.add_parser(
        "keygen",
        help="write central's config-signing key pair (ROADWATCH_CONFIG_KEY, "
        "default DATA_DIR/config-signing.key and .pub)",
        description="Nodes apply only pushes signed with this key: give them the .pub file "
        "(delivery.config_push.central_key in their site config).",
    )
    keygen.set_defaults(func=_config_keygen)
    push = cfsub.add_parser(
        "push",
        help="validate a node's site config, sign it and publish it retained on its config topic",
        description="Reads a site configuration file, carries the scene and calibration files "
        "it names inline, leaves out the delivery section (the node keeps its own), validates "
        "it, records the version, signs it with central's config key and publishes it "
        "retained (QoS 1) on roadwatch/v1/SITE/NODE/config. The node applies scene, "
        "calibration, place and persons_as_riders live; a file that changes anything else "
        "against the push the node runs is refused (change that in the node's own file).",
    )
    push.add_argument("--node", required=True, help="node id")
    push.add_argument("--site", help="site id (default: the file's site)")
    push.add_argument("--file", required=True, type=Path, metavar="site.yaml")
    push.set_defaults(func=_config_push)

    case = csub.add_parser("case", help="export cases for a court; central's case-signing key")
    casesub = case.add_subparsers(dest="case_command", metavar="SUBCOMMAND", required=True)
    case_keygen = casesub.add_parser(
        "keygen",
        help="write central's case-signing key pair (ROADWATCH_CASE_KEY, "
        "default DATA_DIR/case-signing.key and .pub)",
        description="Central signs the manifest of every case package it exports, and each"
        " audit checkpoint, with this key. Publish the .pub file where courts and lawyers"
        " can get it from a source they trust: `roadwatch verify --central-key` checks"
        " packages with it.",
    )
    case_keygen.set_defaults(func=_case_keygen)
    case_export = casesub.add_parser(
        "export",
        help="export a case as one signed ZIP (as the case page's button does), audited",
        description="Writes case-ID.zip: the signed event, its node's key, the evidence on"
        " file, the audit trail and a manifest signed by central. The export is written to"
        " the case's audit trail (actor 'cli:' and your account) with the package's sha256."
        " Check it with `roadwatch verify`.",
    )
    case_export.add_argument("--id", required=True, type=int, help="the case (violation) id")
    case_export.add_argument(
        "--out", type=Path, default=Path(),
        help="a folder (case-ID.zip is written in it) or a file name (default: here)",
    )  # fmt: skip
    case_export.set_defaults(func=_case_export)

    evidence = csub.add_parser("evidence", help="the evidence store against the database")
    esub = evidence.add_subparsers(dest="evidence_command", metavar="SUBCOMMAND", required=True)
    reindex = esub.add_parser(
        "reindex",
        help="record the blobs the evidence store holds for incomplete violations"
        " (after a restore of the database); a dry run without --yes",
        description="For each violation whose evidence is not complete, finds the blobs it"
        " lists that central has no record of, reads each back from the evidence store and"
        " checks it against the listing (sha256, size, media type). Without --yes it only"
        " counts them. With --yes it records those that check out, as an upload does, and"
        " marks complete the violations whose evidence is then all there; audited. A copy"
        " that does not match is named and left alone. Safe while serve and ingest run.",
    )
    reindex.add_argument("--yes", action="store_true", help="record them (default: a dry run)")
    reindex.set_defaults(func=_evidence_reindex)

    audit = csub.add_parser("audit", help="check the audit log; sign checkpoints of its head")
    asub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    checkpoint = asub.add_parser(
        "checkpoint",
        help="sign the audit log's head (entry number and hash) with central's case-signing key",
        description="Checks the whole hash chain, then prints its head signed with central's"
        " case-signing key as one JSON line (or appends it to --out). Keep the lines where"
        " the database's writers cannot reach them (run it daily from another machine over"
        " ssh, say): `central audit verify --checkpoints FILE` then finds a log rewritten"
        " whole, which the chain alone cannot show.",
    )
    checkpoint.add_argument("--out", type=Path, help="append the checkpoint to this file")
    checkpoint.set_defaults(func=_audit_checkpoint)
    averify = asub.add_parser(
        "verify",
        help="walk the audit log's hash chain, and hold it against signed checkpoints",
        description="Exits 0 when the chain checks out and agrees with every checkpoint"
        " given, 1 when anything does not.",
    )
    averify.add_argument(
        "--checkpoints", type=Path, action="append", default=[], metavar="FILE",
        help="a file of checkpoints (one JSON line each), as `central audit checkpoint` writes",
    )  # fmt: skip
    averify.add_argument(
        "--central-key", type=Path, action="append", default=[], metavar="case-signing.pub",
        help="central's case-signing public key from a source you trust (default: the .pub"
        " beside ROADWATCH_CASE_KEY); give it again for each key central signed with"
        " before, after a key change: a checkpoint verifies under any of them",
    )  # fmt: skip
    averify.set_defaults(func=_audit_verify)

    user = csub.add_parser(
        "create-user",
        help="create a user (password from ROADWATCH_NEW_PASSWORD, --password-stdin or a prompt)",
    )
    user.add_argument("--username", required=True)
    user.add_argument("--role", required=True, choices=ROLES)
    user.add_argument("--full-name", default="")
    user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user.set_defaults(func=_create_user)


def _engine(*, migrated: bool = True) -> tuple[Settings, Engine]:
    """The configured database, migrated (or, ``migrated=False``, only reached); a URL
    that names no usable database, or a database a newer central migrated, is a user
    error of one line (its password hidden), not a driver's traceback."""
    from sqlalchemy.exc import ArgumentError

    from central.db import make_engine, migrate
    from central.settings import load_settings
    from roadwatch.errors import UserError

    settings = load_settings()
    url = settings.resolved_database_url
    shown = _shown_url(url)
    try:
        engine = make_engine(url)
    except (ArgumentError, ImportError) as exc:  # (an unknown scheme or a missing driver)
        raise UserError(f"database {shown}: {exc}".splitlines()[0]) from exc
    except OSError as exc:  # SQLite's folder could not be made
        raise UserError(f"database {shown}: cannot make its folder: {exc}") from exc
    with _database_errors(engine, shown):
        if migrated:
            migrate(engine)
        else:
            with engine.connect():
                pass
    return settings, engine


def _shown_url(url: str) -> str:
    """The database URL as it may be printed: its password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from roadwatch.errors import UserError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise UserError("ROADWATCH_DATABASE_URL is not a database URL") from None


@contextmanager
def _database_errors(engine: Engine, shown: str) -> Iterator[None]:
    """The database's errors as one line each (the engine disposed of)."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import DBAPIError

    from central.revisions import NewerRevisionError
    from roadwatch.errors import UserError

    try:
        yield
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise UserError(f"database {shown}: {reason}") from exc
    except (CommandError, NewerRevisionError) as exc:  # (a revision these migrations lack)
        engine.dispose()
        reason = (
            f"Can't locate revision identified by '{exc.current}'"  # (Alembic's words)
            if isinstance(exc, NewerRevisionError)
            else str(exc)
        )
        raise UserError(
            f"database {shown}: {reason}: a newer central migrated it; run that version, or"
            " downgrade the database with it first (docs/central.md, Rolling back)"
        ) from exc
    except BaseException:
        engine.dispose()
        raise


def _serve(args: argparse.Namespace) -> int:
    import signal

    import uvicorn

    from central.app import create_app
    from central.evidence import open_store
    from central.settings import load_settings
    from roadwatch.errors import UserError

    settings = load_settings()
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    open_store(settings).check()  # a clear one-line error before the server starts
    if args.with_ingest:
        from central.ingest import check_broker_tls

        check_broker_tls(settings)
    if args.workers > 1:
        if args.with_ingest:
            raise UserError("run the ingest as its own process when serving with --workers")
        # Migrated once, before the workers start (where the settings say to migrate).
        _settings, engine = _engine(migrated=settings.migrate_on_start)
        engine.dispose()
        os.environ["ROADWATCH_MIGRATE_ON_START"] = "false"
        from central.workers import Workers, shared_metrics

        workers = Workers(
            args.host,
            args.port,
            args.workers,
            options={"log_level": "info", "proxy_headers": False},
        )
        workers.install_signal_handlers()
        port = workers.bind()
        logging.basicConfig(level=logging.INFO, format="central: %(message)s")
        print(
            f"central: serving on http://{args.host}:{port} with {args.workers} workers "
            f"(database {settings.resolved_database_url.split('@')[-1]}, "
            f"evidence {settings.evidence_location})",
            flush=True,
        )
        with shared_metrics():  # /metrics on any worker: the sum over them all
            return workers.run()
    from central.workers import listenable_port

    listenable_port(args.host, args.port)  # uvicorn would log its own error and exit 3
    # The database reached (and migrated) here: one line naming it, not uvicorn's
    # traceback from the app's start.
    _settings, engine = _engine(migrated=settings.migrate_on_start)
    engine.dispose()
    settings = settings.model_copy(update={"migrate_on_start": False})
    lock = None
    if args.with_ingest:
        from central.ingest import client_id_of
        from central.ingest_lock import ClientIdLock

        # (taken here, for one line if another ingest has the id, not uvicorn's traceback
        # from the app's start; the ingest holds it from then on and releases it)
        lock = ClientIdLock(settings.resolved_database_url, client_id_of(settings))
        lock.take()
    app = create_app(settings, with_ingest=args.with_ingest, ingest_lock=lock, freeze_gc=True)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )
    print(
        f"central: serving on http://{args.host}:{args.port} "
        f"(database {settings.resolved_database_url.split('@')[-1]}, "
        f"evidence {settings.evidence_location})",
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler that was there before it; a no-op one lets the command exit 0 after a clean stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: None)
    try:
        uvicorn.Server(config).run()
    finally:
        if lock is not None:
            lock.release()  # (the ingest released it already, unless it never started)
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import signal
    import threading

    from central.ingest import check_broker_tls, run_ingest
    from central.settings import load_settings
    from roadwatch.errors import UserError

    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UserError("--metrics-port must be between 0 and 65535")
    check_broker_tls(load_settings())  # before the database is made or migrated
    settings, engine = _engine()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: stop.set())
    print(
        f"central: ingesting from {settings.mqtt_host}:{settings.mqtt_port} "
        f"(site {settings.mqtt_site}, group {settings.mqtt_share_group})",
        flush=True,
    )
    metrics_at = None if args.metrics_port is None else (args.metrics_host, args.metrics_port)
    try:
        run_ingest(settings, engine, stop, metrics_at=metrics_at)
    finally:
        engine.dispose()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from central.db import (
        ensure_coming_partitions,
        migration_lock,
        move_schema,
        revisions,
        schema_revision,
    )
    from central.revisions import Direction, UnknownRevisionError, plan
    from roadwatch.errors import UserError

    settings, engine = _engine(migrated=False)
    with _database_errors(engine, _shown_url(settings.resolved_database_url)):
        with migration_lock(engine) as conn:
            try:
                move = plan(args.to, revisions(), schema_revision(conn))
            except UnknownRevisionError as exc:
                raise UserError(f"--to: {exc}") from None
            if move.direction is Direction.DOWN and not args.yes:
                raise UserError(
                    f"going back from revision {move.current} to {move.target} drops data"
                    " (docs/central.md, Rolling back); stop every serve and ingest, then"
                    " add --yes"
                )
            move_schema(conn, move.direction, move.target)
        if move.to_head:
            ensure_coming_partitions(engine)
    engine.dispose()
    if move.direction is Direction.NONE:
        print(f"central: database already at revision {move.target}")
    else:
        print(f"central: database at revision {move.target} (was {move.current or 'none'})")
    return 0


def _partitions_ensure(args: argparse.Namespace) -> int:
    from central.partitions import ensure_partitions
    from roadwatch.errors import UserError

    if not 0 <= args.months_ahead <= 120:
        raise UserError("--months-ahead must be between 0 and 120")
    _settings, engine = _engine()
    try:
        if engine.dialect.name != "postgresql":
            print("central: violations are partitioned on PostgreSQL only; nothing to do")
            return 0
        made = ensure_partitions(engine, args.months_ahead)
    finally:
        engine.dispose()
    print(f"central: made {', '.join(made)}" if made else "central: every partition is there")
    return 0


def _partitions_list(_args: argparse.Namespace) -> int:
    from central.partitions import list_partitions

    _settings, engine = _engine()
    try:
        if engine.dialect.name != "postgresql":
            print("central: violations are partitioned on PostgreSQL only")
            return 0
        for part in list_partitions(engine):
            print(f"{part.name}\t{part.bounds}\t~{part.rows} rows")
    finally:
        engine.dispose()
    return 0


def _node_add(args: argparse.Namespace) -> int:
    from central.records import register_node

    pem = _read_public_key(args.public_key)
    reg = _node_registry_change(
        "node_add",
        lambda session: register_node(session, site=args.site, node=args.node, public_key_pem=pem),
    )
    print(f"registered node {reg.site}/{reg.node}")
    _print_node_credentials(reg)
    _print_broker_files_step("refuses the node's broker login")
    return 0


def _node_credentials(args: argparse.Namespace) -> int:
    from central.records import renew_node_credentials

    renewed = _node_registry_change(
        "node_credentials",
        lambda session: renew_node_credentials(session, site=args.site, node=args.node),
    )
    print(f"new credentials for node {renewed.site}/{renewed.node}: the old token is refused")
    _print_node_credentials(renewed)
    _print_broker_files_step(
        "still takes the old broker password and refuses the new one (give the node the new"
        " one once it takes it)"
    )
    return 0


def _print_broker_files_step(until: str) -> None:
    """What the admin must do before the broker takes a broker password central issued:
    central keeps only its hash, written into the broker's passwd by ``broker-files``."""
    import textwrap

    from central.broker_acl import BROKER_FILES_STEP

    said = f"NOT YET IN FORCE: the broker {until} until {BROKER_FILES_STEP}"
    print(textwrap.fill(said, 88, break_long_words=False, break_on_hyphens=False))


def _node_registry_change(
    action: str, change: Callable[[Session], RegisteredNode]
) -> RegisteredNode:
    """``change`` made and audited (as ``action``, by the CLI) in one transaction."""
    from central.db import session_factory, transaction
    from central.records import append_audit

    _settings, engine = _engine()
    try:
        with transaction(session_factory(engine)) as session:
            done = change(session)
            append_audit(session, actor=cli_actor(), action=action,
                         detail={"site": done.site, "node": done.node})  # fmt: skip
    finally:
        engine.dispose()
    return done


def _print_node_credentials(reg: RegisteredNode) -> None:
    print(f"upload token (shown once, give it to the node): {reg.token}")
    print(f"broker user: {reg.mqtt_username}")
    print(f"broker password (shown once, give it to the node): {reg.mqtt_password}")


def _zoned_time(text: str) -> datetime:
    from datetime import datetime

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the zone too, e.g. {text}+07:00")
    return at


def _read_public_key(path: Path) -> str:
    from roadwatch.errors import UserError

    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read public key {path}: {exc}") from exc


def _node_key_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from central.db import session_factory
    from central.models import Node, NodeKey
    from roadwatch.errors import UserError

    _settings, engine = _engine()
    try:
        with session_factory(engine)() as session:
            found = session.scalar(
                select(Node).where(Node.site == args.site, Node.node == args.node)
            )
            if found is None:
                raise UserError(f"no node {args.site}/{args.node} is registered")
            keys = session.scalars(
                select(NodeKey).where(NodeKey.node_id == found.id).order_by(NodeKey.added_at)
            ).all()
            for k in keys:
                state = (
                    f"revoked {k.revoked_at.isoformat(timespec='seconds')}: {k.revoke_reason}"
                    if k.revoked_at is not None
                    else "in force"
                )
                print(f"{k.fingerprint}  added {k.added_at.isoformat(timespec='seconds')}  {state}")
    finally:
        engine.dispose()
    return 0


def _node_key_add(args: argparse.Namespace) -> int:
    from central.db import session_factory, transaction
    from central.records import add_node_key, append_audit

    pem = _read_public_key(args.public_key)
    _settings, engine = _engine()
    try:
        with transaction(session_factory(engine)) as session:
            key = add_node_key(session, site=args.site, node=args.node, public_key_pem=pem)
            fingerprint = key.fingerprint
            append_audit(
                session, actor=cli_actor(), action="node_key_add",
                detail={"site": args.site, "node": args.node, "fingerprint": fingerprint},
            )  # fmt: skip
    finally:
        engine.dispose()
    print(f"key {fingerprint} added to node {args.site}/{args.node}")
    print("its earlier keys stay in force until revoked: roadwatch central node key revoke")
    return 0


def _node_key_revoke(args: argparse.Namespace) -> int:
    from central.db import session_factory, transaction
    from central.records import append_audit, revoke_node_key

    _settings, engine = _engine()
    try:
        with transaction(session_factory(engine)) as session:
            key = revoke_node_key(
                session, site=args.site, node=args.node, fingerprint=args.fingerprint,
                reason=args.reason, since=args.since,
            )  # fmt: skip
            fingerprint, revoked_at = key.fingerprint, key.revoked_at
            assert revoked_at is not None
            append_audit(
                session, actor=cli_actor(), action="node_key_revoke",
                detail={"site": args.site, "node": args.node, "fingerprint": fingerprint,
                        "reason": key.revoke_reason, "since": revoked_at.isoformat()},
            )  # fmt: skip
    finally:
        engine.dispose()
    print(f"key {fingerprint} of node {args.site}/{args.node} revoked")
    print("every ingest refuses what it signs within a minute;", end=" ")
    if args.since is None:
        # (Revoked from now: what central took before stands, as the docs say.)
        print("the cases it signed that central received before stand")
    else:
        since = revoked_at.isoformat(timespec="seconds")
        print(f"the cases it signed that central received from {since} on are flagged")
    return 0


def _node_status_order_reset(args: argparse.Namespace) -> int:
    from central.db import session_factory, transaction
    from central.records import append_audit, reset_status_order

    _settings, engine = _engine()
    try:
        with transaction(session_factory(engine)) as session:
            held = reset_status_order(session, site=args.site, node=args.node)
            session_at = held.session_started_at
            append_audit(
                session, actor=cli_actor(), action="node_status_order_reset",
                detail={"site": args.site, "node": args.node,
                        "session_started_at": None if session_at is None
                        else session_at.isoformat(),
                        "sequence": held.sequence},
            )  # fmt: skip
    finally:
        engine.dispose()
    if session_at is None:
        print(f"node {args.site}/{args.node} had no status position held: its next status is taken")
    else:
        print(
            f"node {args.site}/{args.node}: the position held (status {held.sequence} of the"
            f" session begun {session_at.isoformat(timespec='milliseconds')}) is forgotten;"
            " its next status is taken"
        )
    return 0


def _signal_controller(spec: str) -> tuple[str, str, str]:
    """``SITE:PASSWORD_FILE`` -> (broker user, site, password)."""
    from central.broker_acl import signal_controller_username
    from roadwatch.contract.topics import TopicError, _check_ident
    from roadwatch.errors import UserError

    site, sep, file = spec.partition(":")
    if not sep or not file:
        raise UserError(f"--signal-controller {spec!r}: give SITE:PASSWORD_FILE")
    try:
        _check_ident("site", site)
    except TopicError as exc:
        raise UserError(f"--signal-controller {spec!r}: {exc}") from exc
    try:
        password = Path(file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--signal-controller {spec!r}: cannot read {file}: {exc}") from exc
    if not password:
        raise UserError(f"--signal-controller {spec!r}: {file} holds no password")
    return signal_controller_username(site), site, password


def _broker_files(args: argparse.Namespace) -> int:
    from cryptography import x509

    from central.broker_acl import (
        BrokerAccount,
        broker_username,
        mosquitto_password_hash,
        render_acl,
        render_passwd,
    )
    from central.broker_tls import FILES as TLS_FILES
    from central.broker_tls import certificate_hosts, write_broker_tls
    from central.db import session_factory, transaction
    from central.records import broker_accounts
    from roadwatch.errors import UserError

    settings, engine = _engine()
    central_password = settings.mqtt_password
    if not central_password:
        raise UserError("set ROADWATCH_MQTT_PASSWORD: central's own broker password")
    try:
        with transaction(session_factory(engine)) as session:
            nodes = broker_accounts(session)
    finally:
        engine.dispose()
    central_user = settings.broker_username or "central"
    out: Path = args.out
    certs = out / "certs"
    # Everything is checked before anything is written: files that name each other
    # (passwd, acl) are never left half new.
    try:
        accounts = [BrokerAccount(central_user, mosquitto_password_hash(central_password))]
        accounts += [
            BrokerAccount(broker_username(site, node), pw_hash, site, node)
            for site, node, pw_hash in nodes
        ]
        controllers = [_signal_controller(spec) for spec in args.signal_controller]
        accounts += [
            BrokerAccount(user, mosquitto_password_hash(password))
            for user, _, password in controllers
        ]
        passwd = render_passwd(accounts)
        acl = render_acl(
            [(site, node) for site, node, _ in nodes],
            central_user=central_user,
            controllers=[(user, site) for user, site, _ in controllers],
        )
    except ValueError as exc:
        raise UserError(f"broker accounts: {exc}") from exc
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    for path in (out / "passwd", out / "acl"):
        if path.is_dir():
            raise UserError(f"{path} is a folder; it must be the broker's file")
    hosts = list(args.tls_host or [])
    if certs.exists() and not certs.is_dir():
        raise UserError(f"{certs} is not a folder")
    present = [name for name in TLS_FILES if (certs / name).exists()] if hosts else []
    new_tls = bool(hosts) and not present
    if present and "server.crt" not in present:
        raise UserError(
            f"{certs} holds {', '.join(present)} but no server.crt (an interrupted run, or"
            " files put there by hand): nodes may trust that CA, so nothing is replaced;"
            " complete or move the folder"
        )
    if present:
        try:
            kept = certificate_hosts(certs / "server.crt")
        except (OSError, ValueError, x509.ExtensionNotFound) as exc:
            raise UserError(f"{certs / 'server.crt'}: not a usable certificate ({exc})") from exc
        missing = [h for h in hosts if h not in kept]
        print(f"kept the existing TLS files in {certs}" + (
            f"; its certificate is for {', '.join(kept)}, not {', '.join(missing)}:"
            " move certs/ away to make new ones" if missing else ""))  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
        if new_tls:
            files = write_broker_tls(certs, hosts)
            print(f"wrote a private CA and the broker's certificate in {files.ca_cert.parent}")
        # Both files are made in full before either replaces the one in use.
        staged: list[tuple[Path, Path]] = []
        try:
            staged.append(_staged(out / "passwd", passwd, 0o600))
            staged.append(_staged(out / "acl", acl, 0o644))
            for tmp, final in staged:
                tmp.replace(final)
        finally:
            for tmp, _final in staged:
                tmp.unlink(missing_ok=True)
    except ValueError as exc:
        raise UserError(f"--tls-host: {exc}") from exc
    except OSError as exc:
        raise UserError(f"cannot write in {out}: {exc.strerror or exc}") from exc
    print(f"wrote {out / 'passwd'} and {out / 'acl'}: central and {len(nodes)} node(s)")
    return 0


def _config_keygen(_args: argparse.Namespace) -> int:
    from central.settings import load_settings

    files = _keygen(load_settings().resolved_config_key, "config-signing key")
    print(f"wrote {files.private} (keep it on central) and {files.public}")
    print("give each node the .pub file: delivery.config_push.central_key in its site config")
    return 0


def _case_keygen(_args: argparse.Namespace) -> int:
    from central.settings import load_settings

    files = _keygen(load_settings().resolved_case_key, "case-signing key")
    print(f"wrote {files.private} (keep it on central) and {files.public}")
    print("publish the .pub file for whoever checks exported cases: roadwatch verify --central-key")
    return 0


def _keygen(path: Path, kind: str) -> KeyPairFiles:
    from edge.identity import write_key_pair
    from roadwatch.errors import UserError

    if path.suffix != ".key":
        raise UserError(f"the {kind}'s file name must end in .key, not {path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the folder of {path}: {exc.strerror}") from exc
    return write_key_pair(path.with_suffix(""), kind=kind)


def _case_export(args: argparse.Namespace) -> int:
    from central.case_export import case_on_record, export_case, load_case_key, record_export
    from central.db import session_factory, transaction
    from central.evidence import EvidenceError, open_store
    from central.models import Violation, utcnow
    from roadwatch.errors import UserError

    out: Path = args.out / f"case-{args.id}.zip" if args.out.is_dir() else args.out
    if out.suffix != ".zip":
        raise UserError(
            f"--out {args.out}: give a folder that exists or a file name ending in .zip"
        )
    if out.exists():
        raise UserError(f"{out} exists: give another --out (an export is never overwritten)")
    settings, engine = _engine()
    try:
        key = load_case_key(settings)  # a missing key is reported before anything is read
        with session_factory(engine)() as session:
            found = session.get(Violation, args.id)
            if found is None:
                raise UserError(f"no case {args.id}")
            record = case_on_record(session, found)
        try:
            exported = export_case(
                record, open_store(settings), key=key, actor=cli_actor(), at=utcnow()
            )
        except EvidenceError as exc:
            raise UserError(f"the evidence store: {exc}") from exc
        with exported.file:
            _write_new(out, exported.file)
            try:
                with transaction(session_factory(engine)) as session:
                    record_export(session, record, exported, actor=cli_actor())
            except BaseException:
                out.unlink(missing_ok=True)  # (a package not in the audit trail is not handed out)
                raise
    finally:
        engine.dispose()
    print(f"wrote {out} ({exported.size} bytes, sha256 {exported.sha256})")
    for gone in exported.manifest["missing"]:
        print(f"left out: {gone['role']}: {gone['why']}")
    pub = settings.resolved_case_key.with_suffix(".pub")
    print(f"check it: roadwatch verify {out} --central-key {pub}")
    return 0


def _evidence_reindex(args: argparse.Namespace) -> int:
    from central.db import session_factory, transaction
    from central.evidence import EvidenceError, open_store
    from central.evidence_reindex import damaged_line, reindex
    from central.records import append_audit
    from roadwatch.errors import UserError

    settings, engine = _engine()
    try:
        store = open_store(settings)
        store.check()
        sessions = session_factory(engine)
        try:
            found = reindex(sessions, store, apply=args.yes)
        except (EvidenceError, OSError) as exc:  # (unreachable, or a file it may not read)
            raise UserError(
                f"the evidence store: {exc}"
                + (" (what was recorded before stays; run it again)" if args.yes else "")
            ) from exc
        if args.yes:
            with transaction(sessions) as session:
                append_audit(
                    session, actor=cli_actor(), action="evidence_reindex",
                    detail={"incomplete": found.incomplete, "missing": found.missing,
                            "recorded": found.recorded, "completed": found.completed,
                            "absent": found.absent,
                            "damaged": [c.sha256 for c in found.damaged[:100]],
                            "damaged_count": len(found.damaged)},
                )  # fmt: skip
    finally:
        engine.dispose()
    print(f"violations with evidence incomplete: {found.incomplete}")
    print(f"blobs they list that central has no record of: {found.missing}")
    print(f"  in the evidence store and intact: {found.intact}")
    print(f"  in the evidence store but damaged: {len(found.damaged)}")
    print(f"  not in the evidence store: {found.absent}")
    for checked in found.damaged:
        print(damaged_line(checked))
    if args.yes:
        print(
            f"recorded {found.recorded} blobs; violations with their evidence complete"
            f" now: {found.completed}"
        )
    else:
        print(f"dry run: nothing recorded; --yes records the {found.intact} intact blobs")
    return 0


def _write_new(out: Path, source: IO[bytes]) -> None:
    """``source`` written whole to ``out``, which must not exist (nor come to exist while
    it is written: the finished file is linked in, which never replaces one; where the
    filesystem has no links, a USB stick's FAT say, it is created exclusively and copied)."""
    import errno
    import shutil
    import tempfile

    from roadwatch.errors import UserError

    exists = f"{out} exists: give another --out (an export is never overwritten)"
    try:
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    except OSError as exc:
        raise UserError(f"cannot write in {out.parent}: {exc.strerror or exc}") from exc
    partial = Path(name)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # (as a file made anew: mkstemp's is 0600)
        with os.fdopen(fd, "wb") as file:
            shutil.copyfileobj(source, file)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(partial, out)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            _copy_new(partial, out)
    except FileExistsError:
        raise UserError(exists) from None
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _copy_new(source: Path, out: Path) -> None:
    """``source`` copied to ``out``, created exclusively; nothing left there on failure."""
    import shutil

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file, source.open("rb") as whole:
            shutil.copyfileobj(whole, file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _audit_checkpoint(args: argparse.Namespace) -> int:
    import json

    from central.audit_log import make_checkpoint
    from central.case_export import load_case_key
    from central.db import read_session_factory
    from central.models import utcnow
    from roadwatch.errors import UserError

    settings, engine = _engine()
    try:
        key = load_case_key(settings)
        with read_session_factory(engine)() as session:
            line = json.dumps(make_checkpoint(session, key, utcnow()), sort_keys=True)
    finally:
        engine.dispose()
    if args.out is None:
        print(line)
        return 0
    try:
        with args.out.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise UserError(f"cannot append to {args.out}: {exc.strerror or exc}") from exc
    print(f"appended the checkpoint of entry {json.loads(line)['seq']} to {args.out}")
    return 0


def _public_key(path: Path) -> Ed25519PublicKey:
    from roadwatch.contract.signing import SignatureError, load_public_key_pem
    from roadwatch.errors import UserError

    try:
        return load_public_key_pem(_read_public_key(path))
    except SignatureError as exc:
        raise UserError(f"cannot use the key {path}: {exc}") from exc


def _case_public_key(settings: Settings) -> Ed25519PublicKey:
    """Central's case-signing public key: the .pub beside the key (or the key's own half)."""
    from central.case_export import load_case_key

    pub = settings.resolved_case_key.with_suffix(".pub")
    return _public_key(pub) if pub.is_file() else load_case_key(settings).public_key()


def _audit_verify(args: argparse.Namespace) -> int:
    from central.audit_log import check_checkpoints, check_log, read_checkpoints
    from central.db import read_session_factory

    checkpoints = [c for path in args.checkpoints for c in read_checkpoints(path)]
    settings, engine = _engine()
    try:
        if not checkpoints:
            keys = []
        elif args.central_key:
            keys = [_public_key(path) for path in args.central_key]
        else:
            keys = [_case_public_key(settings)]
        with read_session_factory(engine)() as session:
            chain = check_log(session)
            held = check_checkpoints(session, checkpoints, keys) if keys else None
    finally:
        engine.dispose()
    if chain.ok:
        print(f"OK   the chain: {chain.entries} entries, head {chain.head}")
    else:
        print(f"FAIL the chain breaks at entry {chain.first_bad_seq}: {chain.problem}")
    for finding in held.findings if held is not None else ():
        if finding.problem is None:
            print(f"OK   checkpoint of entry {finding.seq} ({finding.at}): the log agrees")
        else:
            print(f"FAIL checkpoint of entry {finding.seq} ({finding.at}): {finding.problem}")
    return 0 if chain.ok and (held is None or held.ok) else 1


def _config_push(args: argparse.Namespace) -> int:
    from central.db import session_factory, transaction
    from central.node_config import (
        UNCHECKED_THEN,
        load_config_key,
        publish_retained,
        push_config,
        read_document,
    )
    from roadwatch.errors import UserError

    document = read_document(args.file)
    site = args.site or document.get("site")
    if not isinstance(site, str):
        raise UserError(f"{args.file}: no site; give --site")
    from central.ingest import check_broker_tls
    from central.settings import load_settings

    check_broker_tls(load_settings())  # before the database is made or migrated
    settings, engine = _engine()
    load_config_key(settings)  # a missing key is reported before anything else
    try:
        with transaction(session_factory(engine)) as session:
            record = push_config(
                session,
                site=site,
                node=args.node,
                document=document,
                actor=cli_actor(),
                key=lambda: load_config_key(settings),
                publish=lambda topic, payload: publish_retained(settings, topic, payload),
            )
    finally:
        engine.dispose()
    again = " again (same version and document)" if record.repeated else ""
    print(f"pushed config {record.version} to {site}/{args.node}{again} on {record.topic}")
    print(f"sha256 {record.sha256}; the node reports the version it runs in its status")
    if record.unchecked:
        print(f"NOT CHECKED against what the node runs: {record.unchecked}; {UNCHECKED_THEN}")
    return 0


def _staged(path: Path, text: str, mode: int) -> tuple[Path, Path]:
    """``text`` written in full beside ``path``, to be renamed over it: (temporary, path)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        tmp.unlink(missing_ok=True)  # (ours: the open above made it)
        raise
    return tmp, path


def _create_user(args: argparse.Namespace) -> int:
    import getpass
    import re

    from central.api.schemas import MAX_FULL_NAME, USERNAME_PATTERN
    from central.db import session_factory, transaction
    from central.records import append_audit, create_user
    from central.security import MIN_PASSWORD
    from central.workflow import Role
    from roadwatch.errors import UserError

    if not re.fullmatch(USERNAME_PATTERN, args.username):
        raise UserError("user name: 3-64 of a-z, 0-9, '.', '_' or '-'")
    if len(args.full_name) > MAX_FULL_NAME or "\x00" in args.full_name:
        raise UserError(f"--full-name: at most {MAX_FULL_NAME} characters, no NUL")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get("ROADWATCH_NEW_PASSWORD"):
        password = os.environ["ROADWATCH_NEW_PASSWORD"]
    else:
        try:
            password = getpass.getpass(f"password for {args.username}: ")
        except EOFError:  # no terminal to ask on
            raise UserError(
                "no password given: set ROADWATCH_NEW_PASSWORD or use --password-stdin"
            ) from None
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password needs at least {MIN_PASSWORD} characters")
    _settings, engine = _engine()
    try:
        with transaction(session_factory(engine)) as session:
            create_user(
                session,
                username=args.username,
                password=password,
                role=Role(args.role),
                full_name=args.full_name,
            )
            append_audit(
                session,
                actor=cli_actor(),
                action="user_create",
                detail={"username": args.username, "role": args.role},
            )
    finally:
        engine.dispose()
    print(f"created {args.role} {args.username}")
    return 0
