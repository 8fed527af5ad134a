"""A long JSON answer written a chunk at a time as its items are read, never held whole:
the same bytes as the whole answer's model would give."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")


@dataclass(frozen=True)
class JsonEnvelope:
    """An answer's JSON around its list of items, which is its last field: ``head`` up to
    and with the list's ``[``, ``tail`` from its ``]``."""

    head: bytes
    tail: bytes

    @classmethod
    def of(cls, empty: BaseModel) -> JsonEnvelope:
        """The envelope of ``empty``, the answer with no items, as FastAPI sends a model
        (by alias)."""
        whole = empty.model_dump_json(by_alias=True).encode()
        if not whole.endswith(b"[]}"):
            raise ValueError(f"{type(empty).__name__}'s last field is not an empty list")
        return cls(whole[:-2], whole[-2:])

    def chunks(
        self, items: Iterable[T], adapter: TypeAdapter[list[T]], per_chunk: int
    ) -> Iterator[bytes]:
        """The answer with ``items`` in its list, in chunks of ``per_chunk`` items, each
        written by ``adapter`` (the list's own): byte for byte the whole model's JSON."""
        started = False
        for batch in _batches(items, per_chunk):
            written = adapter.dump_json(batch, by_alias=True)[1:-1]  # (without its [ and ])
            yield (b"," if started else self.head) + written
            started = True
        yield (b"" if started else self.head) + self.tail


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    them = iter(items)
    while batch := list(islice(them, size)):
        yield batch
