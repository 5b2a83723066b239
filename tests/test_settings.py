"""Configuration: environment over tocsin.toml over defaults, validated, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from channels.base import ChannelKind
from dispatcher.settings import Settings


def test_defaults_need_no_server() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///tocsin.db"
    assert settings.redis_url is None
    assert settings.channels[ChannelKind.EMAIL].providers == ["outbox"]


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tocsin.toml").write_text(
        'organisation = "Acme"\n[channels.email]\nproviders = ["sendgrid", "smtp"]\n'
        '[providers.sendgrid]\napi_key = "SG.from-file"\n'
    )
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("TOCSIN_ORGANISATION", "Acme Ltd")
    settings = Settings()
    assert settings.organisation == "Acme Ltd", "the environment wins over the file"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.channels[ChannelKind.EMAIL].providers == ["sendgrid", "smtp"]
    assert settings.channels[ChannelKind.SMS].providers == ["outbox"], "other channels keep their defaults"
    assert settings.provider_options("sendgrid")["api_key"] == "SG.from-file"


def test_postgres_urls_use_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/tocsin")
    assert Settings().database_url == "postgresql+psycopg://u:p@db/tocsin"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("TOCSIN_DATABASE_URL", "mysql://x", "database_url"),
        ("REDIS_URL", "http://cache", "redis_url"),
        ("TOCSIN_RETRY__MAX_ATTEMPTS", "0", "max_attempts"),
    ],
)
def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert field in str(error.value).lower()


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_WEBHOOK_SECRET", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    settings = Settings()
    assert "c2VjcmV0" not in repr(settings)
    assert settings.provider_options("webhook")["default_secret"].startswith("whsec_")
