"""Configuration: environment over tocsin.toml over defaults, validated, secrets never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from channels.base import ChannelKind
from dispatcher.config.settings import Settings


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
        ("TOCSIN_RETRY__JITTER", "2", "jitter"),
    ],
)
def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert field in str(error.value).lower()


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_WEBHOOK_SECRET", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    monkeypatch.setenv("TOCSIN_PROVIDERS__SENDGRID__API_KEY", "SG.dont-print-me")
    settings = Settings()
    assert "c2VjcmV0" not in repr(settings)
    assert "dont-print-me" not in repr(settings) + str(settings)
    assert settings.provider_options("webhook")["default_secret"].startswith("whsec_")


def test_config_show_masks_every_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatcher.config.show import effective_config

    (tmp_path / "tocsin.toml").write_text(
        '[providers.twilio]\nauth_token = "tw-secret-1"\naccount_sid = "AC123"\n'
        '[providers.apprise.rooms]\nops = "slack://T1/B2/room-secret-2"\n'
    )
    monkeypatch.setenv("TOCSIN_PROVIDERS__SENDGRID__API_KEY", "SG.secret-3")
    monkeypatch.setenv("DATABASE_URL", "postgresql://tocsin:secret-4@db/tocsin")
    monkeypatch.setenv("REDIS_URL", "redis://:secret-5@cache:6379/0")
    monkeypatch.setenv("TOCSIN_WEBHOOK_SECRET", "whsec_c2VjcmV0LTZzZWNyZXQtNnNlY3JldC02")
    shown = json.dumps(effective_config(Settings()))
    for secret in ("tw-secret-1", "room-secret-2", "secret-3", "secret-4", "secret-5", "c2VjcmV0"):
        assert secret not in shown
    config = effective_config(Settings())
    assert config["providers"]["twilio"]["account_sid"] == "AC123", "what is not secret stays readable"
    assert config["database_url"] == "postgresql+psycopg://tocsin:********@db/tocsin"
    assert config["providers"]["apprise"]["rooms"] == {"ops": "********"}


def test_structured_provider_options_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_PROVIDERS__APPRISE__ROOMS", '{"ops": "json://127.0.0.1/ops"}')
    assert Settings().provider_options("apprise")["rooms"] == {"ops": "json://127.0.0.1/ops"}
