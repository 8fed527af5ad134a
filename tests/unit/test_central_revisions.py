"""Where `roadwatch central migrate --to REV` takes the database (pure: REV against the
migrations and the database's revision)."""

from __future__ import annotations

import pytest

from central.revisions import (
    Direction,
    MigrationMove,
    NewerRevisionError,
    Revision,
    UnknownRevisionError,
    plan,
)

REVISIONS = [
    Revision("0001", "0001_initial_schema"),
    Revision("0002", "0002_node_broker_password"),
    Revision("0003_monthly_partitions", "0003_monthly_partitions"),
    Revision("0015_status_received", "0015_status_received"),
    Revision("0019_status_received_at", "0019_status_received_at"),
]
HEAD = "0019_status_received_at"
R15 = "0015_status_received"
UP, DOWN, NONE = Direction.UP, Direction.DOWN, Direction.NONE


@pytest.mark.parametrize(
    ("wanted", "current", "expected"),
    [
        ("head", None, MigrationMove(None, HEAD, UP, to_head=True)),
        ("head", "0001", MigrationMove("0001", HEAD, UP, to_head=True)),
        ("head", HEAD, MigrationMove(HEAD, HEAD, NONE, to_head=True)),
        (HEAD, HEAD, MigrationMove(HEAD, HEAD, NONE, to_head=True)),
        ("0019", "0002", MigrationMove("0002", HEAD, UP, to_head=True)),
        ("0015", HEAD, MigrationMove(HEAD, R15, DOWN, to_head=False)),
        (R15, HEAD, MigrationMove(HEAD, R15, DOWN, to_head=False)),
        ("0015", R15, MigrationMove(R15, R15, NONE, to_head=False)),
        ("0003", "0001", MigrationMove("0001", "0003_monthly_partitions", UP, to_head=False)),
        ("0015", None, MigrationMove(None, R15, UP, to_head=False)),
        ("0001", HEAD, MigrationMove(HEAD, "0001", DOWN, to_head=False)),  # (the id)
        ("0001_initial_schema", "0002", MigrationMove("0002", "0001", DOWN, to_head=False)),
        ("0002_node_broker_password", "0002", MigrationMove("0002", "0002", NONE, to_head=False)),
    ],
)  # fmt: skip
def test_where_a_revision_takes_the_database(
    wanted: str, current: str | None, expected: MigrationMove
) -> None:
    assert plan(wanted, REVISIONS, current) == expected


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("0099", "no revision '0099': name one of 0001_initial_schema … 0019_status_received_at"),
        ("99", "no revision '99'"),
        ("00015", "no revision '00015'"),
        ("0015_status", "no revision '0015_status'"),
        ("HEAD", "no revision 'HEAD'"),
        ("", "no revision ''"),
        ("base", "no revision 'base'"),
    ],
)
def test_a_revision_these_migrations_lack_is_refused(wanted: str, message: str) -> None:
    with pytest.raises(UnknownRevisionError, match="^" + message):
        plan(wanted, REVISIONS, HEAD)


def test_a_number_that_begins_two_revisions_is_refused() -> None:
    branched = [*REVISIONS, Revision("0019_other", "0019_other")]
    with pytest.raises(UnknownRevisionError, match=r"0019 begins more than one revision"):
        plan("0019", branched, None)
    assert plan("0019_other", branched, None).target == "0019_other"


def test_a_database_a_newer_central_migrated_has_no_direction() -> None:
    with pytest.raises(NewerRevisionError) as raised:
        plan("0015", REVISIONS, "0020_later")
    assert raised.value.current == "0020_later"


def test_without_migrations_every_revision_is_unknown() -> None:
    with pytest.raises(UnknownRevisionError):
        plan("head", [], None)
