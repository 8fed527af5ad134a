"""Messages that break the check itself are refused one by one, not raised into the ingest."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from central import records
from central.intake import Message, Refusal, RefusalCode, check
from central.records import KeyCache, check_batch

TOPIC = "roadwatch/v1/site-a/node-01/cam-01/violation"


def no_key(site: str, node: str) -> None:
    return None


@pytest.mark.parametrize("payload", [b"[" * 5000, b'{"a":' * 5000, b"[" * 50])
def test_nesting_past_the_stack_is_malformed(payload: bytes) -> None:
    outcome = check(Message(TOPIC, payload), no_key)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.MALFORMED


def test_a_message_that_breaks_the_check_is_refused_and_the_rest_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fragile(message: Message, keys: Any) -> Any:
        if message.payload == b"boom":
            raise RuntimeError("a case no check foresaw")
        return check(message, keys)

    monkeypatch.setattr(records, "check", fragile)
    out = check_batch(None, [Message(TOPIC, b"boom"), Message(TOPIC, b"{")], KeyCache())  # type: ignore[arg-type]
    assert [o.outcome.code for o in out] == [RefusalCode.MALFORMED] * 2  # type: ignore[union-attr]
    assert "RuntimeError" in out[0].outcome.reason  # type: ignore[union-attr]


def test_a_database_error_still_raises_so_the_batch_is_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_database(message: Message, keys: Any) -> Any:
        raise OperationalError("SELECT public_key_pem", {}, Exception("server closed"))

    monkeypatch.setattr(records, "check", no_database)
    with pytest.raises(OperationalError):
        check_batch(None, [Message(TOPIC, b"{}")], KeyCache())  # type: ignore[arg-type]
