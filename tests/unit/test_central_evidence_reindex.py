"""A blob read back from the evidence store, held against its name and its listings."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from central.evidence_reindex import Listing, Verdict, judge

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
ALTERED = JPEG[:-1] + b"\x00"


def _chunks(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[at : at + size] for at in range(0, len(data), size)]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("stored", "name", "listings", "verdict", "reason", "matched"),
    [
        (JPEG, _sha(JPEG), [Listing(len(JPEG), "image/jpeg", 7)], Verdict.INTACT, "", 0),
        (MP4, _sha(MP4), [Listing(len(MP4), "video/mp4", None)], Verdict.INTACT, "", 0),
        # Listed twice (two events, one listing it wrong): the listing it matches is kept.
        (JPEG, _sha(JPEG), [Listing(10, "image/jpeg", 1), Listing(len(JPEG), "image/jpeg", 2)],
         Verdict.INTACT, "", 1),
        (ALTERED, _sha(JPEG), [Listing(len(JPEG), "image/jpeg", 7)],
         Verdict.DAMAGED, f"hashes to {_sha(ALTERED)}", None),
        (JPEG, _sha(JPEG), [Listing(len(JPEG) + 5, "image/jpeg", 7)],
         Verdict.DAMAGED, f"is {len(JPEG)} bytes, listed as {len(JPEG) + 5}", None),
        (JPEG, _sha(JPEG), [Listing(len(JPEG), "video/mp4", 7)],
         Verdict.DAMAGED, "is not video/mp4", None),
        (JPEG, _sha(JPEG), [Listing(100, "image/jpeg", 7)],
         Verdict.DAMAGED, "is larger than the 100 bytes listed", None),
    ],
)  # fmt: skip
def test_a_stored_copy_is_recorded_only_as_it_is_listed(
    stored: bytes,
    name: str,
    listings: list[Listing],
    verdict: Verdict,
    reason: str,
    matched: int | None,
) -> None:
    checked = judge(name, iter(_chunks(stored)), listings)
    assert (checked.verdict, checked.reason) == (verdict, reason)
    assert checked.listing == (None if matched is None else listings[matched])


def test_a_copy_larger_than_listed_is_not_read_to_its_end() -> None:
    read: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            read.append(1)
            yield b"\xff\xd8" + bytes(998)

    checked = judge("ab" * 32, endless(), [Listing(5000, "image/jpeg", None)])
    assert checked.verdict is Verdict.DAMAGED
    assert len(read) == 6  # (5000 bytes listed: the sixth chunk of 1000 is one too many)
