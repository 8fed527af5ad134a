"""Central's settings and factories: nothing at import, no placeholder secrets in production."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from central import security
from central.security import (
    decode_access_token,
    hash_password,
    issue_access_token,
    token_digest,
    verify_password,
)
from central.settings import OTHER_VARIABLES, Settings, load_settings, unknown_variable
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


@pytest.mark.parametrize("token", ["  ", "changeme", "secret", "prometheus-token"])
def test_production_refuses_a_placeholder_or_short_metrics_token(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metrics token is a bearer credential like the secret key: "secret" was taken."""
    monkeypatch.setenv("ROADWATCH_ENVIRONMENT", "production")
    monkeypatch.setenv("ROADWATCH_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("ROADWATCH_METRICS_TOKEN", token)
    with pytest.raises(UserError, match="ROADWATCH_METRICS_TOKEN"):
        load_settings()
    monkeypatch.setenv("ROADWATCH_METRICS_TOKEN", "m" * 40)
    assert load_settings().metrics_token == "m" * 40
    monkeypatch.setenv("ROADWATCH_METRICS_TOKEN", "")  # (a compose file's unset variable)
    assert load_settings().metrics_token is None


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADWATCH_ENVIRONMENT", "production")
    monkeypatch.setenv("ROADWATCH_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", "postgresql+psycopg://central@db/roadwatch")
    monkeypatch.setenv("ROADWATCH_TWO_PERSON_RULE", "false")
    s = load_settings()
    assert s.resolved_database_url.startswith("postgresql")
    assert s.two_person_rule is False
    assert s.token_key() == "k" * 40


def test_secrets_stay_out_of_the_settings_repr() -> None:
    """A settings object logged or shown in a traceback names no secret."""
    secrets = {
        "secret_key": "k-secret-" + "k" * 32,
        "s3_secret_access_key": "s3-secret-value",
        "metrics_token": "m-secret-" + "m" * 32,
        "mqtt_password": "mqtt-secret-value",
        "database_url": "postgresql+psycopg://central:db-secret-value@db/roadwatch",
    }
    s = Settings(s3_access_key_id="AKIAEXAMPLE", **secrets)  # type: ignore[arg-type]
    shown = repr(s) + str(s)
    for name, value in secrets.items():
        assert getattr(s, name) == value
        assert value not in shown, name
        assert "secret-value" not in shown and "-secret-" not in shown
    assert "AKIAEXAMPLE" in shown  # (what is no secret is still shown)


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


def test_statistics_count_vietnams_days_unless_another_offset_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROADWATCH_STATS_UTC_OFFSET", raising=False)
    assert load_settings().stats_utc_offset == "+07:00"
    for offset in ("+00:00", "-05:30", "+14:00"):
        monkeypatch.setenv("ROADWATCH_STATS_UTC_OFFSET", offset)
        assert load_settings().stats_utc_offset == offset


def test_unsigned_traffic_and_status_are_refused_unless_taken_while_nodes_are_upgraded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from central.intake import ACCEPT_UNSIGNED_SETTING

    assert ACCEPT_UNSIGNED_SETTING == "ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS"
    monkeypatch.delenv(ACCEPT_UNSIGNED_SETTING, raising=False)
    assert load_settings().accept_unsigned_traffic_status is False
    monkeypatch.setenv(ACCEPT_UNSIGNED_SETTING, "true")
    assert load_settings().accept_unsigned_traffic_status is True
    monkeypatch.setenv(ACCEPT_UNSIGNED_SETTING, "perhaps")
    with pytest.raises(UserError, match="accept_unsigned_traffic_status"):
        load_settings()


@pytest.mark.parametrize("offset", ["+7", "07:00", "+07", "+15:00", "+07:60", "UTC", "+07:00 "])
def test_a_statistics_offset_that_is_no_offset_is_one_line_naming_it(
    offset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at start-up, as a request's utc_offset is refused, not when a day is counted."""
    monkeypatch.setenv("ROADWATCH_STATS_UTC_OFFSET", offset)
    with pytest.raises(UserError) as refused:
        load_settings()
    assert str(refused.value) == (
        "invalid central settings: setting 'stats_utc_offset': ROADWATCH_STATS_UTC_OFFSET"
        f" {offset!r} is not an offset from UTC: give a sign, hours and minutes, e.g."
        " +07:00 (Vietnam) or -05:30"
    )


@pytest.mark.parametrize("below", ["", "sub/folder"])
@pytest.mark.parametrize("name", ["ROADWATCH_DATA_DIR", "ROADWATCH_EVIDENCE_DIR"])
def test_a_data_folder_that_is_a_file_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, below: str
) -> None:
    # Every central command stopped with a FileExistsError (or NotADirectoryError) traceback.
    (tmp_path / "central.txt").write_text("not a folder")
    value = tmp_path / "central.txt" / below if below else tmp_path / "central.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env |= {name: str(value), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "migrate"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    shown = f"{value}: {tmp_path / 'central.txt'}" if below else f"{value}"
    field = name.removeprefix("ROADWATCH_").lower()
    assert proc.stderr.splitlines() == [
        f"roadwatch: error: invalid central settings: setting '{field}':"
        f" {name} {shown} is a file, not a folder"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["central.txt"]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://root@127.0.0.1/test", "names mysql: central runs on PostgreSQL"),
        ("postgresql+asyncpg://u@h/db", "names postgresql+asyncpg: central runs on"),
    ],
)
def test_a_database_central_does_not_run_on_is_one_line(
    url: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It failed later with its driver's import error: No module named 'MySQLdb'.
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    with pytest.raises(UserError, match="database_url") as refused:
        load_settings()
    assert said in str(refused.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgresql+psycopg://u@h/db", "sqlite:///var/c.db"]
)
def test_the_databases_central_runs_on_are_taken(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    assert load_settings().resolved_database_url == url


def test_a_sqlite_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env |= {"ROADWATCH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env["ROADWATCH_DATABASE_URL"] = f"sqlite:///{tmp_path}/f/db/central.db"
    proc = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "migrate"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"roadwatch: error: database sqlite:///{tmp_path}/f/db/central.db:")
    assert "cannot make its folder" in line


@pytest.mark.parametrize(
    ("ca", "reason"),
    [
        ("missing.crt", "No such file or directory"),
        (".", "Is a directory"),
        ("not-pem.crt", "not a PEM file of CA certificates"),
    ],
)
@pytest.mark.parametrize(
    "command", [["ingest"], ["serve", "--with-ingest", "--port", "1"]], ids=["ingest", "serve"]
)
def test_a_broker_ca_that_cannot_be_read_is_one_line_naming_it(
    tmp_path: Path, ca: str, reason: str, command: list[str]
) -> None:
    # `central ingest` stopped with a FileNotFoundError traceback that named no file.
    (tmp_path / "not-pem.crt").write_text("hello\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env |= {"ROADWATCH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env["ROADWATCH_MQTT_TLS_CA"] = str(tmp_path / ca)
    proc = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", *command],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"roadwatch: error: ROADWATCH_MQTT_TLS_CA {tmp_path / ca}: {reason}")
    assert not (tmp_path / "data").exists()  # no database made or migrated


def test_the_broker_client_names_a_ca_it_cannot_read(tmp_path: Path) -> None:
    from central.ingest import central_client

    settings = Settings(mqtt_tls_ca=tmp_path / "missing.crt")
    with pytest.raises(UserError, match=r"^ROADWATCH_MQTT_TLS_CA .*missing.crt: No such file"):
        central_client(settings, "test")


def test_an_empty_broker_ca_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # A compose file passes an unset variable on as an empty string (the current folder).
    monkeypatch.setenv("ROADWATCH_MQTT_TLS_CA", "")
    assert load_settings().mqtt_tls_ca is None


@pytest.mark.parametrize(
    ("environ", "refusal"),
    [
        # A typo was ignored: central ran on SQLite instead of the database named.
        (
            {"ROADWATCH_DATABSE_URL": "postgresql://db/x"},
            "ROADWATCH_DATABSE_URL is not a central setting (did you mean ROADWATCH_DATABASE_URL?)",
        ),
        (
            {"roadwatch_mqtt_hots": "broker"},
            "roadwatch_mqtt_hots is not a central setting (did you mean ROADWATCH_MQTT_HOST?)",
        ),
        ({"ROADWATCH_TWO_PERSON": "false"}, "(did you mean ROADWATCH_TWO_PERSON_RULE?)"),
        (
            {"ROADWATCH_XYZZY": "1"},
            "ROADWATCH_XYZZY is not a central setting (see docs/central.md)",
        ),
        # Settings in any case, the edge's, the tools' and the tests' variables, empty ones
        # (as compose passes an unset one) and others' are no settings to refuse.
        ({"ROADWATCH_DATABASE_URL": "x", "roadwatch_mqtt_host": "h"}, None),
        ({name: "1" for name in OTHER_VARIABLES}, None),
        ({"ROADWATCH_DATABSE_URL": ""}, None),
        ({"PATH": "/bin", "ROADWATCHER": "1"}, None),
    ],
)
def test_unknown_roadwatch_variables_are_refused(
    environ: dict[str, str], refusal: str | None
) -> None:
    found = unknown_variable(environ)
    if refusal is None:
        assert found is None
    else:
        assert found is not None and refusal in found


def test_every_roadwatch_variable_the_project_uses_is_known() -> None:
    used = set()
    # (every file that may set or read one; not docs/, where a typo may be an example)
    for folder in ("central", "edge", "models", "roadwatch", "calibration", "tests", "scripts",
                   "docker", ".ci", "bench"):  # fmt: skip
        for path in (ROOT / folder).rglob("*"):
            binary = path.suffix in {".pyc", ".onnx", ".mp4", ".png", ".jpg"}
            if path.is_file() and not binary and path != Path(__file__):  # (its typos)
                text = path.read_text(encoding="utf-8", errors="replace")
                used |= set(re.findall(r"\bROADWATCH_[A-Z0-9_]*[A-Z0-9]\b", text))
    assert used
    assert unknown_variable(dict.fromkeys(used, "1")) is None


def test_central_refuses_a_mistyped_variable_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env |= {"ROADWATCH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env["ROADWATCH_DATABSE_URL"] = "postgresql://central@db/roadwatch"
    proc = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "migrate"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "roadwatch: error: ROADWATCH_DATABSE_URL is not a central setting"
        " (did you mean ROADWATCH_DATABASE_URL?)"
    ]
    assert not (tmp_path / "data").exists()


S3_ENV = {
    "ROADWATCH_EVIDENCE_STORE": "s3",
    "ROADWATCH_S3_BUCKET": "roadwatch-evidence",
    "ROADWATCH_S3_ENDPOINT_URL": "http://minio:9000",
    "ROADWATCH_S3_ACCESS_KEY_ID": "central",
    "ROADWATCH_S3_SECRET_ACCESS_KEY": "q" * 40,
}


def test_the_s3_store_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from central.evidence import FilesystemStore, open_store
    from central.evidence_s3 import S3Store

    assert isinstance(open_store(Settings()), FilesystemStore)
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROADWATCH_S3_PREFIX", "ql13/")
    s = load_settings()
    store = open_store(s)  # builds a client, contacts nothing
    assert isinstance(store, S3Store)
    assert store.key("ab" * 32) == "ql13/ab/ab/" + "ab" * 32
    assert s.evidence_location == "s3://roadwatch-evidence/ql13/ at http://minio:9000"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ROADWATCH_S3_BUCKET": None}, "ROADWATCH_S3_BUCKET is needed"),
        ({"ROADWATCH_S3_BUCKET": "Not_A_Bucket"}, "s3_bucket"),
        ({"ROADWATCH_S3_SECRET_ACCESS_KEY": None}, "set both ROADWATCH_S3_ACCESS_KEY_ID"),
        ({"ROADWATCH_S3_ACCESS_KEY_ID": None}, "set both ROADWATCH_S3_ACCESS_KEY_ID"),
        ({"ROADWATCH_S3_ENDPOINT_URL": "minio:9000"}, "s3_endpoint_url"),
        ({"ROADWATCH_S3_PREFIX": "/abs"}, "s3_prefix"),
        ({"ROADWATCH_S3_PREFIX": "no-slash"}, "s3_prefix"),
        ({"ROADWATCH_EVIDENCE_STORE": "ftp"}, "evidence_store"),
    ],
)
def test_incomplete_s3_settings_are_refused(
    change: dict[str, str | None], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**S3_ENV, **change}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=message):
        load_settings()


def test_empty_s3_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in S3_ENV:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("ROADWATCH_EVIDENCE_STORE", "filesystem")
    s = load_settings()  # what the compose file passes when docker/.env sets none of them
    assert s.s3_bucket is None and s.s3_endpoint_url is None and s.s3_access_key_id is None


@pytest.mark.parametrize("secret", ["minioadmin", "changeme", "testing", " Test "])
def test_production_refuses_a_placeholder_s3_secret(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROADWATCH_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("ROADWATCH_S3_SECRET_ACCESS_KEY", secret)
    Settings()  # development takes it
    monkeypatch.setenv("ROADWATCH_ENVIRONMENT", "production")
    with pytest.raises(UserError, match="ROADWATCH_S3_SECRET_ACCESS_KEY is a placeholder"):
        load_settings()
    monkeypatch.setenv("ROADWATCH_S3_SECRET_ACCESS_KEY", "q" * 40)
    assert load_settings().s3_secret_access_key == "q" * 40


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
    expires = jwt.decode(token, "k" * 40, algorithms=["HS256"])["exp"]
    assert decode_access_token(token, "k" * 40, now=expires - 1) == claims
    assert decode_access_token(token, "k" * 40, now=expires) is None  # checked, then expired
    padded = jwt.encode({"sub": "an", "role": "officer", "exp": expires, "x": "y" * 5000}, "k" * 40)
    assert jwt.decode(padded, "k" * 40, algorithms=["HS256"])["sub"] == "an"
    assert decode_access_token(padded, "k" * 40) is None  # over MAX_TOKEN_CHARS: not checked
    ahead = datetime.now(UTC) + timedelta(minutes=5)
    early = jwt.encode({"sub": "an", "role": "officer", "iat": ahead, "exp": expires}, "k" * 40)
    assert decode_access_token(early, "k" * 40) is None  # issued "in the future": refused...
    assert (early, "k" * 40) not in security._checked_tokens  # ...and not remembered
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
