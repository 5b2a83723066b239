"""Strict configuration: every unknown key, provider name and badly shaped option is refused at load,
naming the file (or variable), the table, the key and the nearest valid key. Nothing is dropped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from channels.memory import MemoryAdapter
from dispatcher.config.settings import Settings
from dispatcher.config.strict import load_settings
from dispatcher.domain.errors import ConfigurationError
from dispatcher.engine.runtime import build_runtime
from tests.cli import tocsin

TWILIO_OK = 'account_sid = "AC' + "0" * 32 + '"\nauth_token = "t"\nfrom_number = "+15551234567"\n'


@pytest.fixture
def refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """The message loading ``toml`` (with these environment variables) is refused with."""

    def load(toml: str, env: dict[str, str] | None = None) -> str:
        (tmp_path / "tocsin.toml").write_text(toml)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        with pytest.raises(ConfigurationError) as caught:
            load_settings()
        return str(caught.value)

    return load


def test_the_issue_reproduction_config_show_refuses_a_misspelt_key(tmp_path: Path) -> None:
    # printf '[retry]\nlease_second = 10\n' > tocsin.toml && tocsin config show   (exited 0 before)
    (tmp_path / "tocsin.toml").write_text("[retry]\nlease_second = 10\n")
    ran = tocsin("config", "show", cwd=tmp_path)
    assert ran.code == 1
    assert "tocsin.toml: [retry] has no setting `lease_second` (did you mean `lease_seconds`?)" in ran.err
    assert "Traceback" not in ran.err
    assert ran.out == ""


def test_a_top_level_key_written_after_a_table_is_explained(refused: Callable[..., str]) -> None:
    # The issue: ingest_token written after the generated [retry] table vanished; Alertmanager got 401.
    message = refused('[retry]\nlease_seconds = 300\ningest_token = "s3cret"\n')
    assert "[retry] has no setting `ingest_token`" in message
    assert "`ingest_token` is a top-level setting" in message
    assert "above the first [table]" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("lease_seconds = 3\n", "the top level has no setting `lease_seconds`: it belongs in [retry]"),
        (
            "organisaton = 'Acme'\n",
            "the top level has no setting `organisaton` (did you mean `organisation`?)",
        ),
        ("[channels.email]\nbatchsize = 5\n", "[channels.email] has no setting `batchsize` (did you mean"),
        ("[channels.emial]\nenabled = true\n", "[channels] has no channel `emial` (did you mean `email`?)"),
        ("[circuit_breaker]\nfailure = 2\n", "[circuit_breaker] has no setting `failure` (did you mean"),
        ("[rate_limits.twilio]\nper_second = 1\nbrust = 2\n", "[rate_limits.twilio] has no setting `brust`"),
        ("[limits]\nmax_body = 10\n", "[limits] has no setting `max_body` (did you mean"),
        (
            "[canary]\nemails = ['a@example.com']\n",
            "[canary] has no setting `emails` (did you mean `email`?)",
        ),
        (
            "[channels.sms]\nproviders = ['twilio']\n[providers.twilio]\n"
            + TWILIO_OK
            + "form_number = 'x'\n",
            "[providers.twilio] has no setting `form_number` (did you mean `from_number`?)",
        ),
    ],
)
def test_unknown_keys_are_refused_at_every_level(
    toml: str, expected: str, tmp_path: Path, refused: Callable[..., str]
) -> None:
    message = refused(toml)
    assert expected in message
    assert message.startswith(str(tmp_path / "tocsin.toml")), "the file is named"


def test_environment_variables_that_name_no_setting_are_refused(refused: Callable[..., str]) -> None:
    message = refused(
        "",
        {"TOCSIN_RETRY__LEASE_SECOND": "10", "TOCSIN_INGEST_TOKN": "x", "TOCSIN_USER": "alice"},
    )
    assert "TOCSIN_RETRY__LEASE_SECOND: [retry] has no setting `lease_second`" in message
    assert (
        "environment: TOCSIN_INGEST_TOKN is not a Tocsin setting (did you mean `TOCSIN_INGEST_TOKEN`?)"
        in (message)
    )
    assert "TOCSIN_USER" not in message, "who you are is read, not a setting"
    assert message.startswith("2 configuration problems:")


def test_a_misspelt_provider_is_refused_with_a_suggestion(refused: Callable[..., str]) -> None:
    message = refused('[channels.email]\nproviders = ["sendgird"]\n[providers.sendgird]\napi_key="SG.x"\n')
    assert "[channels.email] `providers`: unknown provider `sendgird` (did you mean `sendgrid`?)" in message
    assert "[providers.sendgird] names no provider (did you mean `sendgrid`?)" in message
    assert "known providers: apprise, memory, outbox" in message


def test_a_provider_misspelt_in_the_environment_is_named_by_its_variable(refused: Callable[..., str]) -> None:
    message = refused("", {"TOCSIN_CHANNELS__SMS__PROVIDERS": '["twillio"]'})
    assert message.startswith("TOCSIN_CHANNELS__SMS__PROVIDERS: [channels.sms] `providers`: unknown provider")
    assert "(did you mean `twilio`?)" in message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            '[channels.sms]\nproviders = ["twilio"]\n[providers.twilio]\naccount_sid = "AC123"\n'
            'auth_token = "t"\nfrom_number = "+15551234567"\n',
            "[providers.twilio] `account_sid`: account_sid must be 'AC' followed by 32 hex digits",
        ),
        (
            '[channels.email]\nproviders = ["sendgrid"]\n[providers.sendgrid]\napi_key = "key-123"\n'
            'from_email = "status@example.com"\n',
            "[providers.sendgrid] `api_key`: a SendGrid API key starts with 'SG.'",
        ),
        (
            '[channels.email]\nproviders = ["sendgrid"]\n[providers.sendgrid]\napi_key = "SG.x"\n'
            'from_email = "status at example.com"\n',
            "[providers.sendgrid] `from_email`: not an email address: 'status at example.com'",
        ),
        (
            '[channels.sms]\nproviders = ["twilio"]\n[providers.twilio]\n'
            + TWILIO_OK
            + 'base_url = "ftp://x"\n',
            "[providers.twilio] `base_url`: must start with http:// or https://",
        ),
        ('[channels.email]\nproviders = ["sendgrid"]\n', "[providers.sendgrid] needs `api_key`"),
        (
            '[channels.email]\nproviders = ["twilio"]\n[providers.twilio]\n' + TWILIO_OK,
            "`twilio` carries sms, not email",
        ),
    ],
)
def test_provider_options_are_checked_for_shape_at_load(
    options: str, expected: str, refused: Callable[..., str]
) -> None:
    assert expected in refused(options)


def test_secrets_never_appear_in_the_messages(refused: Callable[..., str]) -> None:
    message = refused(
        '[channels.email]\nproviders = ["sendgrid"]\n[providers.sendgrid]\napi_key = "not-a-key-0xdeadbeef"\n'
        'from_email = "x"\n'
    )
    assert "0xdeadbeef" not in message


def test_options_of_disabled_channels_are_not_required(tmp_path: Path) -> None:
    (tmp_path / "tocsin.toml").write_text('[channels.chat]\nenabled = false\nproviders = ["apprise"]\n')
    settings = load_settings()
    assert not settings.channels["chat"].enabled  # type: ignore[index]


def test_a_toml_syntax_error_names_the_file(tmp_path: Path, refused: Callable[..., str]) -> None:
    message = refused('organisation = "Acme\n')
    assert message.startswith(f"{tmp_path / 'tocsin.toml'}: not valid TOML:")
    assert "line 1" in message


def test_an_injected_provider_counts_as_configured_and_memory_is_valid(sqlite_url: str) -> None:
    settings = Settings(
        database_url=sqlite_url,
        channels={"email": {"providers": ["sendgrid"]}, "sms": {"providers": ["memory"]}},
    )
    rt = build_runtime(settings, adapters={"sendgrid": MemoryAdapter()})
    assert rt.providers_for("email") == ["sendgrid"]  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"\[providers.sendgrid\] needs `api_key`"):
        build_runtime(settings)


def test_a_bad_value_names_where_it_was_written(tmp_path: Path, refused: Callable[..., str]) -> None:
    in_file = refused('database_url = "mysql://nope"\n')
    assert (
        in_file
        == f"{tmp_path / 'tocsin.toml'}: `database_url`: must be a sqlite:/// path or a postgresql:// URL"
    )
    from_env = refused("", {"DATABASE_URL": "mysql://nope"})
    assert from_env.startswith("DATABASE_URL: `database_url`: must be"), "the variable the platform set"


@pytest.mark.parametrize(
    ("key", "value"), [("public_url", "tocsin.example.com"), ("status_page_url", "ftp://status")]
)
def test_web_addresses_need_a_scheme_and_a_host(refused: Callable[..., str], key: str, value: str) -> None:
    assert f"`{key}`: {value!r} must be an http:// or https:// URL with a host" in refused(
        f'{key} = "{value}"\n'
    )
