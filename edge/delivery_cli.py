"""``roadwatch edge deliver``: run the node's delivery service (outbox -> MQTT, uploads)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from roadwatch import cli_args

if TYPE_CHECKING:
    from edge.delivery_config import DeliveryConfig
    from edge.outbox import Outbox


def register(edge_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deliver = edge_sub.add_parser(
        "deliver",
        help="send the outbox's events over MQTT and upload their evidence, until stopped",
        description=(
            "Publish stored events at QoS 1 over a persistent MQTT session, keep the retained "
            "node status, and upload evidence blobs to central. Stops cleanly on SIGTERM or "
            "Ctrl-C, flushing what it can within --stop-timeout."
        ),
    )
    deliver.add_argument(
        "--config", type=Path, required=True, help="YAML file with a delivery: section"
    )
    deliver.add_argument(
        "--stop-timeout",
        type=cli_args.seconds,
        default=10.0,
        metavar="S",
        help="seconds to flush on stop (default 10)",
    )
    deliver.set_defaults(func=_deliver)

    status = edge_sub.add_parser(
        "outbox",
        help="show the outbox: pending, published, disk use, broken evidence",
        description="Print the outbox's counts and every evidence blob that cannot be "
        "delivered (missing or changed on disk), with the events it leaves incomplete, "
        "and the violations central refused for good. Exits 1 when there is broken "
        "evidence or the disk alarm is on. `outbox refused ...` acts on the refused ones;"
        " `outbox receipted resend` sends receipted ones again.",
    )
    # (also after a subcommand: `outbox refused export DIR --config FILE`)
    status.add_argument("--config", type=Path, help="YAML file with a delivery: section")
    status.set_defaults(func=_outbox_status)
    outbox_sub = status.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND")
    refused = outbox_sub.add_parser(
        "refused",
        help="export, re-queue or drop the violations central refused for good",
        description="Violations central refused for good (revoked_key, forged, "
        "reused_event_id, from_the_past) are kept in the outbox, outside its "
        "disk budget, and not sent again. Export them, queue them again once central's "
        "admin has put the cause right, or drop them. Each action is logged in the outbox.",
    )
    refused_sub = refused.add_subparsers(
        dest="refused_command", metavar="SUBCOMMAND", required=True
    )
    export = refused_sub.add_parser(
        "export",
        help="write refused violations and their evidence into a folder",
        description="Write each refused violation into DIR/EVENT_ID/: event.json (the "
        "signed event, as sent), refusal.json (central's code and reason, the evidence "
        "listed and where each blob is) and its evidence files, each checked against its "
        "sha256. All of them or none. Exported ones may then be dropped.",
    )
    export.add_argument("directory", type=Path, metavar="DIR", help="folder to write into")
    _choose(export, required=False, default_all=True)
    export.set_defaults(func=_refused_export)
    retry = refused_sub.add_parser(
        "retry",
        help="queue refused violations for delivery again",
        description="Queue refused violations for delivery again, as new (e.g. once "
        "central's admin has registered the node's right key); refused again, they are "
        "marked refused again.",
    )
    _choose(retry, required=True)
    retry.set_defaults(func=_refused_retry)
    drop = refused_sub.add_parser(
        "drop",
        help="remove refused violations and their evidence (after an export)",
        description="Remove refused violations and the evidence no other event lists. "
        "Needs --yes; where one of them was never exported nothing is dropped, unless"
        " --not-exported is given.",
    )
    _choose(drop, required=True)
    drop.add_argument("--yes", action="store_true", help="confirm the removal")
    drop.add_argument(
        "--not-exported",
        action="store_true",
        help="drop also those never exported (their event and evidence are lost)",
    )
    drop.set_defaults(func=_refused_drop)
    receipted = outbox_sub.add_parser(
        "receipted",
        help="send again the violations central receipted (after central's restore)",
        description="Violations central receipted are kept in the outbox for"
        " receipted_retention_s (a day), then deleted. A central whose database was"
        " restored from a backup no longer holds those it receipted after the backup:"
        " send them again.",
    )
    receipted_sub = receipted.add_subparsers(
        dest="receipted_command", metavar="SUBCOMMAND", required=True
    )
    resend = receipted_sub.add_parser(
        "resend",
        help="queue receipted violations for delivery again (a dry run without --yes)",
        description="Queue for delivery again the violations central receipted at or after"
        " --since (the receipt time the node recorded), and before --until, that the outbox"
        " still holds. Central drops a copy of one it still holds and receipts it again."
        " Their evidence files already uploaded are no longer on the node and are not sent"
        " again. Without --yes, only says how many it would send. Safe while the node runs.",
    )
    resend.add_argument(
        "--since",
        required=True,
        metavar="TIME",
        help="ISO 8601 time with its zone, e.g. 2026-12-07T10:00+07:00 (the backup's time)",
    )
    resend.add_argument(
        "--until", metavar="TIME", help="ISO 8601 time with its zone (default: no bound)"
    )
    resend.add_argument("--yes", action="store_true", help="queue them (else a dry run)")
    resend.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="YAML file with a delivery: section",
    )
    resend.set_defaults(func=_receipted_resend)


def _choose(parser: argparse.ArgumentParser, *, required: bool, default_all: bool = False) -> None:
    """--id ID (repeatable) or --all, and --config, on a refused-violations subcommand."""
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument(
        "--id",
        dest="ids",
        action="append",
        metavar="EVENT_ID",
        help="a refused violation's event id (again for more)",
    )
    which.add_argument(
        "--all",
        action="store_true",
        help="every refused violation" + (" (the default)" if default_all else ""),
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="YAML file with a delivery: section",
    )


def _deliver(args: argparse.Namespace) -> int:
    import signal
    import threading

    from edge.delivery_config import load_delivery_config
    from edge.delivery_service import DeliveryService

    config = load_delivery_config(args.config)
    service = DeliveryService.from_config(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    print(f"delivering from {config.outbox.path} to {config.broker.host}:{config.broker.port}")
    while not stop.wait(1.0):
        pass
    flushed = service.stop(args.stop_timeout)
    print("stopped" if flushed else "stopped with events still pending (kept in the outbox)")
    return 0


def _existing_outbox(args: argparse.Namespace) -> tuple[DeliveryConfig, Outbox]:
    """The configured outbox, opened; a UserError when there is none (opening one creates
    it, and a mistyped path then showed an empty outbox with nothing pending)."""
    from edge.delivery_config import load_delivery_config
    from edge.delivery_service import open_outbox
    from edge.outbox import DATABASE_NAME
    from roadwatch.errors import UserError

    if getattr(args, "config", None) is None:
        raise UserError("--config FILE is required (the YAML file with a delivery: section)")
    config = load_delivery_config(args.config)
    if not (config.outbox.path / DATABASE_NAME).is_file():
        raise UserError(f"no outbox at {config.outbox.path} (outbox.path in {args.config})")
    return config, open_outbox(config)


def _chosen(args: argparse.Namespace) -> list[str] | None:
    """The event ids named (--id), or None for all."""
    return None if args.ids is None else list(args.ids)


def _actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # (no user name for this uid, e.g. in a container)
        import os

        return f"uid {os.getuid()}"


def _refused_export(args: argparse.Namespace) -> int:
    config, outbox = _existing_outbox(args)
    with outbox:
        exported = outbox.export_refused(args.directory, _chosen(args), actor=_actor())
    if not exported:
        print(f"no violation refused by central in {config.outbox.path}: nothing exported")
        return 0
    for item in exported:
        note = f"; not on the node: {'; '.join(item.missing)}" if item.missing else ""
        print(f"exported {item.event_id} to {item.folder} ({item.evidence} evidence file(s){note})")
    print(f"{len(exported)} refused violation(s) exported into {args.directory}")
    return 0


def _refused_retry(args: argparse.Namespace) -> int:
    config, outbox = _existing_outbox(args)
    with outbox:
        queued = outbox.retry_refused(_chosen(args), actor=_actor())
    for event_id in queued:
        print(f"queued {event_id} for delivery again")
    print(
        f"{len(queued)} refused violation(s) queued again in {config.outbox.path}"
        " (sent by the node's delivery; refused again, they are marked refused again)"
    )
    return 0


def _refused_drop(args: argparse.Namespace) -> int:
    from roadwatch.errors import UserError

    if not args.yes:
        raise UserError(
            "dropping removes refused violations and their evidence from the node: add"
            " --yes to confirm (export them first: `roadwatch edge outbox refused export"
            " DIR`); nothing was dropped"
        )
    config, outbox = _existing_outbox(args)
    with outbox:
        dropped = outbox.drop_refused(_chosen(args), actor=_actor(), not_exported=args.not_exported)
    for event_id in dropped.event_ids:
        print(f"dropped {event_id}")
    print(
        f"{len(dropped.event_ids)} refused violation(s) dropped from {config.outbox.path},"
        f" with {dropped.blobs} evidence file(s) ({dropped.freed_bytes} bytes freed)"
    )
    if dropped.left_on_disk:
        print(
            f"{dropped.left_on_disk} dropped evidence file(s) could not be removed yet (see"
            " the warnings): they are removed at the next `edge outbox` or start of the node"
        )
    return 0


def _zoned_time(option: str, text: str) -> float:
    """An ISO 8601 time with its zone, as epoch seconds; a UserError (nothing changed)."""
    from datetime import datetime

    from roadwatch.errors import UserError

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-12-07T10:00+07:00);"
            " nothing was sent again"
        ) from None
    if at.tzinfo is None:
        raise UserError(
            f"{option} {text} has no zone: give it, e.g. {text}+07:00 or {text}Z;"
            " nothing was sent again"
        )
    return at.timestamp()


def _receipted_resend(args: argparse.Namespace) -> int:
    from edge.outbox import utc_seconds
    from roadwatch.errors import UserError

    since = _zoned_time("--since", args.since)
    until = None if args.until is None else _zoned_time("--until", args.until)
    if until is not None and until <= since:
        raise UserError(
            f"--until {args.until} is not after --since {args.since}; nothing was sent again"
        )
    config, outbox = _existing_outbox(args)
    with outbox:
        resend = outbox.resend_receipted(since, until, dry_run=not args.yes)
    kept_from = time.time() - config.outbox.receipted_retention_s
    if since < kept_from:
        print(
            f"receipted violations are kept {config.outbox.receipted_retention_s:.0f} s"
            f" (receipted_retention_s): those receipted before {utc_seconds(kept_from)} are"
            " no longer on this node"
        )
    span = (
        f", receipted from {utc_seconds(resend.first_receipted_at)} to"
        f" {utc_seconds(resend.last_receipted_at)}"
        if resend.first_receipted_at is not None and resend.last_receipted_at is not None
        else ""
    )
    count = len(resend.event_ids)
    if args.yes:
        for event_id in resend.event_ids:
            print(f"queued {event_id} for delivery again")
        print(f"{count} receipted violation(s) queued again in {config.outbox.path}{span}")
    else:
        print(
            f"would send {count} receipted violation(s) again from {config.outbox.path}{span}"
            " (a dry run: add --yes to queue them)"
        )
    if count:
        print(
            f"  their evidence: {resend.evidence_on_node} file(s) not uploaded yet (sent as"
            f" usual), {resend.evidence_uploaded} uploaded before and no longer on the node"
            f" (not sent again), {resend.evidence_broken} broken"
        )
    return 0


def _outbox_status(args: argparse.Namespace) -> int:
    import shutil

    from edge.delivery_policy import DISK_HEADROOM_BYTES
    from edge.outbox import utc_seconds
    from edge.publisher import KEY_PROBE_S

    config, outbox = _existing_outbox(args)
    with outbox:
        stats = outbox.stats()
        broken = outbox.broken_blobs()
        fired = outbox.fired()
        refused = outbox.refused_events()
        refused_bytes = outbox.refused_bytes()
        actions = outbox.refused_actions()
    print(f"outbox {config.outbox.path}")
    print(
        f"  violations pending {stats.violations_pending}, awaiting a receipt"
        f" {stats.awaiting_receipt}, receipted {stats.receipted}, refused by central"
        f" {stats.refused} (kept, not sent again)"
    )
    if stats.refused_awaiting_key:
        print(
            f"  of those refused, awaiting the registration of this node's key"
            f" {stats.refused_awaiting_key} (genuine, refused as forged: central lacks the key"
            " they are signed with; sent again by themselves once central holds it)"
        )
    print(
        f"  traffic minutes pending {stats.traffic_pending}, sent {stats.traffic_sent}"
        " (no receipt: the broker's acknowledgement is their delivery)"
    )
    if stats.oldest_unreceipted_created_at is not None:
        age = max(0.0, time.time() - stats.oldest_unreceipted_created_at)
        print(f"  oldest message central has not receipted: {age:.0f} s")
    print(f"  evidence pending {stats.blobs_pending}, broken {stats.blobs_broken}")
    if fired:
        left = sum(f.orphaned for f in fired)
        print(
            f"  violations found, evidence being built {len(fired) - left}, left by a stopped"
            f" node {left} (stored without evidence when delivery next starts)"
        )
    print(
        f"  disk {stats.used_bytes} of {stats.limit_bytes} bytes "
        f"({stats.used_fraction:.0%}){' ALARM: nearly full' if stats.alarm else ''}"
    )
    # The budget counts the outbox's own files; the disk may fill with others.
    free = shutil.disk_usage(config.outbox.path).free
    disk_low = free < 2 * DISK_HEADROOM_BYTES
    alarm = " ALARM: the disk is nearly full (evidence is refused, clips first)"
    print(f"  filesystem {free} bytes free{alarm if disk_low else ''}")
    for blob in broken:
        print(f"  broken {blob.sha256}: {blob.reason}; incomplete: {' '.join(blob.event_ids)}")
    if stats.refused:
        print(
            f"  refused by central: {refused_bytes} bytes on disk outside the budget (`roadwatch"
            " edge outbox refused export DIR`, then `retry` or `drop`)"
        )
    for fingerprint in sorted({e.awaiting_key for e in refused if e.awaiting_key}):
        print(
            f"  key {fingerprint} is this node's and central lacks it: register it on central"
            f" (`roadwatch central node key add --site {config.site} --node {config.node}"
            f" --public-key {_public_key_file(config.key_path, fingerprint)}`, the public key"
            " whose fingerprint this is); the violations awaiting it are sent again by"
            " themselves once central takes one signed with it (the running node sends the"
            f" oldest again every {KEY_PROBE_S / 60:.0f} minutes to check)"
        )
    for event in refused:
        exported = (
            f" (exported {utc_seconds(event.exported_at)} to {event.exported_to})"
            if event.exported_at is not None
            else ""
        )
        awaiting = (
            f" (awaiting key registration: {event.awaiting_key})" if event.awaiting_key else ""
        )
        print(
            f"  refused {event.event_id} at {utc_seconds(event.refused_at)}: {event.code}:"
            f" {event.reason}{awaiting}{exported}"
        )
    for done in actions:
        print(
            f"  {utc_seconds(done.at)} {done.action} {done.event_id} by {done.actor}: {done.detail}"
        )
    return 1 if broken or stats.alarm or disk_low else 0


def _public_key_file(key_path: Path, fingerprint: str) -> str:
    """The node's public key file (beside its private key, as ``edge keygen`` writes it)
    when it is the key of ``fingerprint``; else ``PUBLIC_KEY_FILE``: the key awaited is
    one the node signed with before its key was changed again, or the file is not there."""
    from roadwatch.contract.signing import SignatureError, key_fingerprint, load_public_key_pem

    public = key_path.with_suffix(".pub")
    try:
        if key_fingerprint(load_public_key_pem(public.read_bytes())) == fingerprint:
            return str(public)
    except (OSError, SignatureError):
        pass
    return "PUBLIC_KEY_FILE"
