"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


def validator_words(message: str) -> str:
    """A pydantic error message as the validator wrote it: without the "Value error, " or
    "Assertion failed, " pydantic puts before the words of a validator that raised."""
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


class UserError(Exception):
    """Bad input or environment, explained in one line; no traceback is shown."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
