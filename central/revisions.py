"""Which way ``roadwatch central migrate --to REV`` moves the database: REV resolved
against central's migrations, oldest first, and the database's revision (no I/O: the
caller reads both)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

HEAD = "head"
_NUMBER = re.compile(r"\d{4}")


@dataclass(frozen=True)
class Revision:
    """One migration: Alembic's revision id and its file's name without ``.py`` (the same
    from 0003 on; ``0001`` is ``0001_initial_schema``)."""

    id: str
    name: str


class UnknownRevisionError(ValueError):
    """REV names no revision, or (a bare number) more than one."""


class NewerRevisionError(LookupError):
    """The database is at a revision these migrations do not hold (a newer central's)."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


class Direction(Enum):
    UP = "up"
    DOWN = "down"  # drops what the migrations in between added
    NONE = "none"


@dataclass(frozen=True)
class MigrationMove:
    current: str | None  # None: a database no migration has run on
    target: str
    direction: Direction
    to_head: bool


def resolve(wanted: str, revisions: Sequence[Revision]) -> str:
    """The revision id ``wanted`` names: ``head``, a revision id, a file name, or a 4-digit
    number that begins exactly one of them."""
    if not revisions:
        raise UnknownRevisionError("there are no migrations")
    if wanted == HEAD:
        return revisions[-1].id
    for revision in revisions:
        if wanted in (revision.id, revision.name):
            return revision.id
    if _NUMBER.fullmatch(wanted):
        numbered = [r for r in revisions if r.name.split("_", 1)[0] == wanted]
        if len(numbered) == 1:
            return numbered[0].id
        if numbered:
            names = ", ".join(r.name for r in numbered)
            raise UnknownRevisionError(
                f"{wanted} begins more than one revision ({names}): name one"
            )
    raise UnknownRevisionError(
        f"no revision {wanted!r}: name one of {revisions[0].name} … {revisions[-1].name}"
        f" (a file of central/migrations/versions/ without .py), its 4-digit number, or {HEAD}"
    )


def plan(wanted: str, revisions: Sequence[Revision], current: str | None) -> MigrationMove:
    """Where ``wanted`` is from ``current`` (None: no revision yet), revisions oldest first
    in one line of history."""
    target = resolve(wanted, revisions)
    ids = [r.id for r in revisions]
    if current is not None and current not in ids:
        raise NewerRevisionError(current)
    here = -1 if current is None else ids.index(current)
    there = ids.index(target)
    if there > here:
        direction = Direction.UP
    elif there < here:
        direction = Direction.DOWN
    else:
        direction = Direction.NONE
    return MigrationMove(current, target, direction, to_head=target == ids[-1])
