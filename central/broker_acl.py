"""Mosquitto password and ACL files generated from the node registry.

Each node gets its own broker account, named ``{site}.{node}`` (ids cannot contain '.'),
that may publish only under its own topic prefix and read only its own config and
receipts; central's account reads everything and writes config and receipts. The
password file holds Mosquitto's own hash format, so plain passwords never reach the
broker's disk.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from roadwatch.contract.topics import PREFIX, CameraTopic, NodeTopic

# Mosquitto 2.x password hash: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt ("$7$").
_PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12


# What puts a broker password central issued in force: central keeps only its hash,
# written into the broker's passwd by ``central broker-files``.
BROKER_FILES_STEP = (
    "the broker's files are written again and it has reloaded them; on central, with the"
    " folder of the broker's passwd and acl: roadwatch central broker-files --out DIR (the"
    " same --tls-host and --signal-controller as before), then reload the broker"
    " (Mosquitto: SIGHUP)"
)


def broker_username(site: str, node: str) -> str:
    return f"{site}.{node}"


def signal_controller_username(site: str) -> str:
    """The account of a site's signal controllers (``signal_controller_acl``)."""
    return f"signal.{site}"


def mosquitto_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """The ``$7$`` hash mosquitto_passwd writes for ``password``."""
    if not password:
        raise ValueError("an empty broker password is not allowed")
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _PBKDF2_ITERATIONS)
    return "$7${}${}${}".format(
        _PBKDF2_ITERATIONS,
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(digest).decode("ascii"),
    )


@dataclass(frozen=True)
class BrokerAccount:
    """One broker login: a node (site and node set) or a service account."""

    username: str
    password_hash: str
    site: str | None = None
    node: str | None = None

    def __post_init__(self) -> None:
        for ch in (":", "\n", "\r"):
            if ch in self.username:
                raise ValueError(f"broker username {self.username!r} contains {ch!r}")
        if not self.password_hash.startswith("$7$"):
            raise ValueError(f"{self.username}: password hash is not in mosquitto's $7$ format")


def render_passwd(accounts: Iterable[BrokerAccount]) -> str:
    lines = [f"{a.username}:{a.password_hash}" for a in sorted(accounts, key=lambda a: a.username)]
    names = [line.split(":", 1)[0] for line in lines]
    if len(set(names)) != len(names):
        raise ValueError("two broker accounts share a username")
    return "".join(line + "\n" for line in lines)


def node_acl(site: str, node: str) -> list[str]:
    base = f"{PREFIX}/{site}/{node}"
    return [
        f"user {broker_username(site, node)}",
        f"topic write {base}/{NodeTopic.STATUS.value}",
        f"topic write {base}/+/{CameraTopic.VIOLATION.value}",
        f"topic write {base}/+/{CameraTopic.TRAFFIC.value}",
        f"topic read {base}/{NodeTopic.CONFIG.value}",
        f"topic read {base}/{NodeTopic.RECEIPT.value}",
        f"topic read {base}/+/{CameraTopic.SIGNAL.value}",
    ]


def central_acl(username: str) -> list[str]:
    return [
        f"user {username}",
        f"topic read {PREFIX}/#",
        f"topic write {PREFIX}/+/+/{NodeTopic.CONFIG.value}",
        f"topic write {PREFIX}/+/+/{NodeTopic.RECEIPT.value}",
    ]


def signal_controller_acl(username: str, site: str) -> list[str]:
    return [f"user {username}", f"topic write {PREFIX}/{site}/+/+/{CameraTopic.SIGNAL.value}"]


def render_acl(
    nodes: Iterable[tuple[str, str]],
    *,
    central_user: str = "central",
    controllers: Iterable[tuple[str, str]] = (),
) -> str:
    """ACL file: every (site, node) pair, central's account, and signal controllers."""
    blocks = [
        "# Generated from the Roadwatch node registry; edits are overwritten.",
        "# Anonymous clients get nothing: there is no pattern or topic line before the users.",
    ]
    blocks.append("\n".join(central_acl(central_user)))
    for username, site in sorted(controllers):
        blocks.append("\n".join(signal_controller_acl(username, site)))
    for site, node in sorted(set(nodes)):
        blocks.append("\n".join(node_acl(site, node)))
    return "\n\n".join(blocks) + "\n"
