"""Which words a reader gets: their language's (most specific first), their channel's own short or long
text, else the default language's, marked."""

from __future__ import annotations

import pytest

from channels.base import ChannelKind
from dispatcher.domain.update_texts import LocaleText, check_locale_texts, pick_text

MESSAGE = "Card payments fail. We are sorry."
TEXTS = {
    "fr": LocaleText(message="Les paiements échouent. Désolés.", sms="Paiements en échec."),
    "fr-CA": LocaleText(message="Les paiements ne passent pas. Désolés."),
    "en": LocaleText(sms="Payments fail.", email="Card payments fail.\n\nWhat you can do: pay by transfer."),
}


@pytest.mark.parametrize(
    ("locale", "channel", "text", "fallback"),
    [
        ("fr", ChannelKind.EMAIL, "Les paiements échouent. Désolés.", False),
        ("fr", ChannelKind.SMS, "Paiements en échec.", False),
        ("fr-CA", ChannelKind.EMAIL, "Les paiements ne passent pas. Désolés.", False),
        ("fr-BE", ChannelKind.SMS, "Paiements en échec.", False),
        ("en", ChannelKind.SMS, "Payments fail.", False),
        ("en-GB", ChannelKind.EMAIL, "Card payments fail.\n\nWhat you can do: pay by transfer.", False),
        ("en", ChannelKind.WEBHOOK, MESSAGE, False),
        ("de", ChannelKind.WEBHOOK, MESSAGE, True),
        ("de", ChannelKind.SMS, "Payments fail.", True),
    ],
)
def test_the_most_specific_text_wins(locale: str, channel: ChannelKind, text: str, fallback: bool) -> None:
    picked = pick_text(MESSAGE, TEXTS, "en", locale, channel)
    assert (picked.text, picked.fallback) == (text, fallback)


def test_a_reader_who_named_only_a_language_gets_a_regional_text() -> None:
    only_canada = {"fr-CA": LocaleText(message="Les paiements ne passent pas.")}
    picked = pick_text(MESSAGE, only_canada, "en", "fr", ChannelKind.EMAIL)
    assert picked.text == "Les paiements ne passent pas."


@pytest.mark.parametrize(
    ("texts", "problem"),
    [
        ({"fr": LocaleText(sms="Paiements en échec.")}, "texts.fr.message: a text in fr needs its message"),
        ({"en": LocaleText(message="Again")}, "the en message is the update's message itself"),
        ({"klingon!": LocaleText(message="x")}, "'klingon!' is not a locale tag"),
        ({"fr": LocaleText(message="a"), "FR": LocaleText(message="b")}, "fr is given twice"),
    ],
)
def test_bad_texts_are_named(texts: dict[str, LocaleText], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_locale_texts(texts, "en")


def test_a_control_character_in_any_text_is_refused_naming_it() -> None:
    """A NUL typed into a texts file (TOML's \\u0000) never reaches the database or a reader."""
    with pytest.raises(ValueError, match=r"sms\n.*control character U\+0000 at position 9"):
        LocaleText(sms="Paiement\x00s en échec.")
    assert LocaleText(email="Line one.\n\tLine two.").email == "Line one.\n\tLine two."
