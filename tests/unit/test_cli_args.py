"""Shared argument types: good values pass, bad ones are argparse's one-line usage error."""

from __future__ import annotations

import argparse

import pytest

from roadwatch import cli_args
from roadwatch.cli import main


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (cli_args.port, "8000", 8000),
        (cli_args.port, "65535", 65535),
        (cli_args.frame_index, "0", 0),
        (cli_args.frame_index, "120", 120),
        (cli_args.seconds, "2.5", 2.5),
    ],
)
def test_good_values(kind: object, text: str, value: float) -> None:
    assert kind(text) == value  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (cli_args.port, "99999", "outside 1-65535"),
        (cli_args.port, "0", "outside 1-65535"),
        (cli_args.port, "http", "not a port number"),
        (cli_args.frame_index, "-1", "negative"),
        (cli_args.frame_index, "1.5", "not a frame index"),
        (cli_args.seconds, "-5", "positive"),
        (cli_args.seconds, "0", "positive"),
        (cli_args.seconds, "nan", "positive"),
        (cli_args.seconds, "inf", "positive"),
        (cli_args.seconds, "soon", "not a number of seconds"),
    ],
)
def test_bad_values(kind: object, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kind(text)  # type: ignore[operator]


@pytest.mark.parametrize(
    "args",
    [
        ["scene", "draw", "s.yaml", "--frame", "f.mp4", "--index", "-1", "-o", "x.png"],
        ["calibrate", "fit", "--points", "p.yaml", "--frame", "f.mp4", "--frame-index", "-5",
         "-o", "c.yaml"],
        ["calibrate", "check", "c.yaml", "--frame", "f.mp4", "--frame-index", "-5", "-o", "x.png"],
        ["edge", "deliver", "--config", "site.yaml", "--stop-timeout", "nan"],
        ["central", "serve", "--port", "99999"],
        ["demo", "--port", "0"],
        ["demo", "--run-for", "nan"],
        ["demo", "--run-for", "-5"],
    ],
)  # fmt: skip
def test_the_commands_take_them(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err
