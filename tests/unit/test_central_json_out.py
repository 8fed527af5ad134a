"""A long JSON answer written in chunks: the bytes of the whole model, however chunked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, TypeAdapter

from central.api.json_out import JsonEnvelope
from central.api.schemas import FlowBucket, TrafficFlow
from roadwatch.contract import VehicleClass

AT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
BUCKETS = TypeAdapter(list[FlowBucket])


def bucket(i: int, lane: str | None, by_class: bool) -> FlowBucket:
    return FlowBucket(
        bucket=f"2026-11-23T14:{i % 60:02d}:00+07:00",
        site="ql13-km22",
        node="node-01",
        camera=f"cam-{i % 3}",
        lane=lane,
        vehicles=i,
        mean_speed_kmh=None if i % 2 else 40.0 + i / 7,  # (a null, and floats as written)
        mean_occupancy=round(i / 1e4, 4),
        minutes=1,
        counts=counts(i) if by_class else None,
    )


def counts(vehicles: int) -> dict[VehicleClass, int]:
    """``vehicles`` by class: none, cars alone, or a car and motorcycles."""
    if vehicles % 2 or vehicles == 0:
        return {VehicleClass.CAR: vehicles} if vehicles else {}
    return {VehicleClass.CAR: 1, VehicleClass.MOTORCYCLE: vehicles - 1}


@pytest.mark.parametrize(
    ("n", "per_chunk", "chunks"),
    [
        (0, 3, 1),  # (the whole answer at once)
        (1, 3, 2),  # (its list's items, then the list's end)
        (3, 3, 2),
        (4, 3, 3),
        (7, 1, 8),
    ],
)
@pytest.mark.parametrize("lane", [None, "lane-1"])
@pytest.mark.parametrize("by_class", [False, True])
def test_an_answer_in_chunks_is_the_bytes_of_the_whole_model(
    n: int, per_chunk: int, chunks: int, lane: str | None, by_class: bool
) -> None:
    buckets = [bucket(i, lane, by_class) for i in range(n)]
    whole = TrafficFlow(
        by="minute", range_from=AT, range_to=AT + timedelta(days=1), buckets=buckets
    )
    envelope = JsonEnvelope.of(whole.model_copy(update={"buckets": []}))
    written = list(envelope.chunks(iter(buckets), BUCKETS, per_chunk))
    assert b"".join(written) == whole.model_dump_json(by_alias=True).encode()
    if n > 2 and by_class:  # (a bucket's counts by class after its other fields, in order)
        assert b'"minutes":1,"counts":{"car":1,"motorcycle":1}}' in b"".join(written)
    if n and not by_class:  # (none: no field, as a lane is absent and never null)
        assert b'"counts"' not in b"".join(written) and b'"minutes":1}' in written[0]
    assert len(written) == chunks
    assert written[0].startswith(b'{"by":"minute","from":"2026-11-23T07:00:00Z"')


class ListNotLast(BaseModel):
    items: list[int]
    total: int


def test_an_answer_whose_list_is_not_its_last_field_is_refused() -> None:
    with pytest.raises(ValueError, match="ListNotLast's last field is not an empty list"):
        JsonEnvelope.of(ListNotLast(items=[], total=0))
