"""Start-up configuration: invalid settings stop the process with one clear line; production refuses to run
unsafely; the database is chosen from DATABASE_URL, its alias POSTGRES_URL, or a local SQLite file.

Settings are decided when the settings module is imported, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest

from tests.support.commands import run_manage, run_python
from tests.support.processes import ROOT

PRODUCTION = "exchange.settings.production"
GOOD_SECRET_KEY = secrets.token_urlsafe(50)
# What a production deployment sets besides its secret (README, "Docker").
PRODUCTION_ENV = {"SECRET_KEY": GOOD_SECRET_KEY, "ALLOWED_HOSTS": "exchange.example.com,exchange,127.0.0.1"}


def assert_refused_with_one_line(result, starts_with: str) -> None:
    """Non-zero exit, exactly one line on stderr, no traceback: an operator reads it and fixes the variable."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(starts_with), lines[0]


@pytest.mark.parametrize(
    "bad_name",
    ["Bad_Name", "-x", "x-", "a" * 64, "two words", "exchange.simulator", "trailing-newline\n"],
)
def test_invalid_instance_name_stops_start_up_with_one_line(bad_name):
    result = run_manage("check", env={"SERVICE_INSTANCE_NAME": bad_name})

    assert_refused_with_one_line(result, "configuration error: SERVICE_INSTANCE_NAME=")


@pytest.mark.parametrize("good_name", ["exchange-simulator-2", "x", "a" * 63, "0-eu-west"])
def test_dns_safe_instance_name_is_accepted(good_name):
    result = run_python(
        "from django.conf import settings; print(settings.SERVICE_INSTANCE_NAME)",
        env={"SERVICE_INSTANCE_NAME": good_name},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == good_name


def test_instance_name_defaults_to_service_name():
    result = run_python(
        "from django.conf import settings; print(settings.SERVICE_INSTANCE_NAME)", env={"SERVICE_NAME": "exchange-b"}
    )

    assert result.stdout.strip() == "exchange-b"


# --- Production --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="no-secret-key"),
        pytest.param({"SECRET_KEY": "too-short"}, id="short-secret-key"),
        pytest.param({"SECRET_KEY": "local-" + "x" * 60}, id="development-secret-key"),
        pytest.param({"SECRET_KEY": "django-insecure-" + "x" * 60}, id="startproject-secret-key"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(env):
    result = run_manage("check", env=env, settings_module=PRODUCTION)

    assert_refused_with_one_line(result, "configuration error: SECRET_KEY")


def test_production_refuses_to_start_with_debug_on():
    result = run_manage("check", env={**PRODUCTION_ENV, "DEBUG": "true"}, settings_module=PRODUCTION)

    assert_refused_with_one_line(result, "configuration error: DEBUG must be off")


def test_production_passes_the_deployment_checklist():
    """``check --deploy``: no errors and no security warning. The one silenced check, security.W008
    (SECURE_SSL_REDIRECT), is deliberate: TLS ends at the load balancer, and probes and siblings call us over
    plain HTTP (README, "Docker"). Warnings of other kinds (API schema hints) are not this test's business."""
    result = run_manage("check", "--deploy", env=PRODUCTION_ENV, settings_module=PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(security." not in result.stdout + result.stderr
    assert "(1 silenced)" in result.stdout + result.stderr


def test_production_silences_only_the_ssl_redirect_check():
    result = run_python(
        "from django.conf import settings; print(settings.SILENCED_SYSTEM_CHECKS)",
        env=PRODUCTION_ENV,
        settings_module=PRODUCTION,
    )

    assert result.stdout.strip() == "['security.W008']"


@pytest.mark.parametrize("hosts", [None, "", "*", "exchange,*"], ids=["unset", "empty", "star", "star-in-list"])
def test_production_refuses_to_start_without_explicit_allowed_hosts(hosts):
    env = {"SECRET_KEY": GOOD_SECRET_KEY} | ({} if hosts is None else {"ALLOWED_HOSTS": hosts})

    result = run_manage("check", env=env, settings_module=PRODUCTION)

    assert_refused_with_one_line(result, "configuration error: ALLOWED_HOSTS must list")


def test_production_answers_only_to_its_allowed_hosts():
    result = run_python(
        "from django.conf import settings; print(settings.ALLOWED_HOSTS)",
        env=PRODUCTION_ENV,
        settings_module=PRODUCTION,
    )

    assert result.stdout.strip() == "['exchange.example.com', 'exchange', '127.0.0.1']"


# --- Database selection --------------------------------------------------------------------------------------
PRINT_DATABASE = (
    "import json; from django.conf import settings; d = settings.DATABASES['default']; "
    "print(json.dumps({k: str(d.get(k)) for k in ('ENGINE', 'NAME', 'HOST', 'PORT', 'USER')}))"
)


def database_settings(**env: str) -> dict[str, str]:
    result = run_python(PRINT_DATABASE, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_database_url_selects_postgresql():
    db = database_settings(DATABASE_URL="postgres://trader@db.internal:6543/exchange_a")

    assert db["ENGINE"] == "exchange.db.postgresql"  # Django's backend with a local health check
    assert (db["HOST"], db["PORT"], db["USER"], db["NAME"]) == ("db.internal", "6543", "trader", "exchange_a")


def test_postgres_url_is_accepted_as_an_alias():
    db = database_settings(POSTGRES_URL="postgres://trader@db.internal:5432/exchange_b")

    assert db["ENGINE"] == "exchange.db.postgresql"  # Django's backend with a local health check
    assert db["NAME"] == "exchange_b"


def test_database_url_wins_over_the_alias():
    db = database_settings(
        DATABASE_URL="postgres://trader@db.internal:5432/primary", POSTGRES_URL="postgres://trader@other:5432/alias"
    )

    assert (db["HOST"], db["NAME"]) == ("db.internal", "primary")


def test_sqlite_file_is_the_default_when_no_database_is_configured():
    db = database_settings()

    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(ROOT / "db.sqlite3")


# --- .env.example --------------------------------------------------------------------------------------------
def test_env_example_lists_every_variable_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))

    assert len(documented) > 10
    assert documented - listed == set()
