"""Central's settings and factories: nothing at import, no placeholder secrets in production."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from central.security import (
    decode_access_token,
    hash_password,
    issue_access_token,
    token_digest,
    verify_password,
)
from central.settings import Settings, load_settings
from central.workflow import Role
from roadwatch.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("secret", ["", "changethis", "CHANGEME", "secret", "short-but-real"])
def test_production_refuses_placeholder_or_short_secrets(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROADWATCH_ENVIRONMENT", "production")
    monkeypatch.setenv("ROADWATCH_SECRET_KEY", secret)
    with pytest.raises(UserError, match="ROADWATCH_SECRET_KEY"):
        load_settings()


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADWATCH_ENVIRONMENT", "production")
    monkeypatch.setenv("ROADWATCH_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", "postgresql+psycopg://central@db/roadwatch")
    monkeypatch.setenv("ROADWATCH_TWO_PERSON_RULE", "false")
    s = load_settings()
    assert s.resolved_database_url.startswith("postgresql")
    assert s.two_person_rule is False
    assert s.token_key() == "k" * 40


def test_development_defaults_run_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROADWATCH_DATABASE_URL", "ROADWATCH_SECRET_KEY", "ROADWATCH_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.resolved_database_url == "sqlite:///var/central/central.db"
    assert s.resolved_evidence_dir == Path("var/central/evidence")
    # no known key: a random one per process
    assert len(s.token_key()) >= 32 and s.token_key() == Settings().token_key()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROADWATCH_MQTT_SITE", "../x"),
        ("ROADWATCH_MAX_EVIDENCE_BYTES", "0"),
        ("ROADWATCH_NOTICE_DAYS", "x"),
    ],
)
def test_bad_values_are_one_line_errors(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=name.removeprefix("ROADWATCH_").lower()):
        load_settings()


def test_importing_the_service_creates_nothing(tmp_path: Path) -> None:
    code = (
        "import central.app, central.ingest, central.cli, central.db, central.models;"
        "import sqlalchemy.pool as p, sys;"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []  # no database, no evidence folder


def test_tokens_and_passwords() -> None:
    token = issue_access_token("an", Role.OFFICER, "k" * 40, 15)
    claims = decode_access_token(token, "k" * 40)
    assert claims is not None and claims.role is Role.OFFICER and claims.username == "an"
    assert decode_access_token(token, "other" * 8) is None
    assert decode_access_token(token[:-2], "k" * 40) is None
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = jwt.encode({"sub": "an", "role": "officer", "exp": past}, "k" * 40, "HS256")
    assert decode_access_token(expired, "k" * 40) is None
    unsigned = jwt.encode(
        {"sub": "an", "role": "admin", "exp": past + timedelta(hours=1)}, "", algorithm="none"
    )
    assert decode_access_token(unsigned, "k" * 40) is None
    hashed = hash_password("a long passphrase")
    assert hashed.startswith("$argon2")
    assert verify_password("a long passphrase", hashed)
    assert not verify_password("a long passphrasE", hashed)
    assert len(token_digest("rwn_x")) == 64
