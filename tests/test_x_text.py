"""X's weighted length (twitter-text v3 rules) and shortening to fit it."""

from __future__ import annotations

import unicodedata

import pytest

from channels.text.x_text import ELLIPSIS, fit_to_weighted, shorten_keeping_last_link, urls, weighted_length


def test_ascii_counts_one_per_character():
    assert weighted_length("a" * 280) == 280
    assert weighted_length("a" * 281) == 281
    assert weighted_length("") == 0


def test_cjk_counts_two():
    assert weighted_length("日" * 140) == 280
    assert weighted_length("日" * 141) == 282
    assert weighted_length("こんにちは世界") == 14
    assert weighted_length("Hello world こんにちは世界") == 26


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("\u2010\u201f", 2),  # 8208-8223 weigh 1
        ("\u2032\u2037", 2),  # 8242-8247 weigh 1
        ("\u2000\u200d", 2),  # 8192-8205 weigh 1
        ("\u10ff", 1),  # last code point of 0-4351
        ("\u1100", 2),  # Hangul Jamo: first heavy code point
        ("\u2026", 2),  # the ellipsis is not in a light range
        ("\u00e9", 1),  # Latin-1 letters are light
    ],
)
def test_code_point_ranges(text, weight):
    assert weighted_length(text) == weight


def test_nfc_normalisation_first():
    decomposed = "e\u0301" * 10  # e + combining acute: two code points, one after NFC
    assert unicodedata.normalize("NFC", decomposed) == "\u00e9" * 10
    assert weighted_length(decomposed) == 10


def test_any_url_counts_23():
    long_url = "https://status.example.com/incidents/" + "a" * 63
    assert len(long_url) == 100
    assert weighted_length(long_url) == 23
    assert weighted_length("http://x.co") == 23  # short URLs are lengthened too
    assert weighted_length(f"Details: {long_url}") == 9 + 23
    assert weighted_length(f"See {long_url}.") == 4 + 23 + 1  # trailing punctuation is not part of it
    assert weighted_length(f"({long_url})") == 1 + 23 + 1


def test_bare_domains_count_23():
    assert weighted_length("status.example.com") == 23
    assert weighted_length("example.com/path/to/a/very/long/incident/page/with/details") == 23
    assert weighted_length("see example.io") == 4 + 23
    assert urls("visit status.example.com/x or https://a.example.org/y, thanks") == [
        "status.example.com/x",
        "https://a.example.org/y",
    ]


def test_things_that_are_not_urls():
    assert weighted_length("ops@example.com") == len("ops@example.com")  # an email address
    assert weighted_length("version 1.2.3") == 13
    assert weighted_length("e.g. i.e.") == 9
    assert weighted_length("https://") == 8


def test_emoji_count_two():
    assert weighted_length("\U0001f525") == 2  # fire
    assert weighted_length("\U0001f600" * 140) == 280


@pytest.mark.parametrize(
    "emoji",
    [
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family: man ZWJ woman ZWJ girl
        "\u2764\ufe0f",  # red heart with variation selector
        "\U0001f1fa\U0001f1f8",  # flag: regional indicators U S
        "1\ufe0f\u20e3",  # keycap one
        "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
        "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England
        "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # woman technologist, skin tone
    ],
)
def test_emoji_sequences_count_two(emoji):
    assert weighted_length(emoji) == 2
    assert weighted_length(f"down {emoji}") == 5 + 2


def test_fit_leaves_a_fitting_text_alone():
    text = "a" * 280
    assert fit_to_weighted(text) is text
    assert fit_to_weighted("short", link="https://status.example.com") == "short"


def test_fit_cuts_at_a_word_boundary_and_adds_an_ellipsis():
    text = " ".join(["checkout"] * 40)  # 359
    fitted = fit_to_weighted(text)
    assert fitted.endswith("checkout" + ELLIPSIS)
    assert weighted_length(fitted) <= 280
    assert weighted_length(fitted) > 270
    assert text.startswith(fitted.removesuffix(ELLIPSIS))


def test_fit_appends_the_link():
    link = "https://status.example.com/incidents/" + "9" * 60
    text = "Payments are failing for some customers. " * 10
    fitted = fit_to_weighted(text, link=link)
    assert fitted.endswith(f"{ELLIPSIS} {link}")
    assert weighted_length(fitted) <= 280
    assert weighted_length(fitted) >= 280 - 12  # at most a word's worth of room left unused
    assert fitted.count(link) == 1


def test_fit_respects_other_limits_and_heavy_text():
    fitted = fit_to_weighted("日本語のテキスト" * 40, limit=100)
    assert weighted_length(fitted) <= 100
    assert fitted.endswith(ELLIPSIS)
    emoji_text = "\U0001f468\u200d\U0001f469\u200d\U0001f467 " * 200
    fitted = fit_to_weighted(emoji_text)
    assert weighted_length(fitted) <= 280
    assert "\u200d" + ELLIPSIS not in fitted  # never cuts inside a sequence


def test_fit_never_splits_a_url():
    text = "x " * 130 + "https://status.example.com/incidents/42 more words here to overflow it all"
    fitted = fit_to_weighted(text)
    assert weighted_length(fitted) <= 280
    assert "https://status.example.com/incidents/42" in fitted or "https://" not in fitted


def test_fit_hard_cuts_one_long_word():
    fitted = fit_to_weighted("z" * 1000)
    assert fitted == "z" * 278 + ELLIPSIS
    assert weighted_length(fitted) == 280


def test_fit_rejects_an_impossible_link():
    with pytest.raises(ValueError, match="weigh more than"):
        fit_to_weighted("a" * 50, limit=10, link="https://example.com/x")


def test_shorten_keeps_the_last_link_at_the_end():
    link = "https://status.example.com/incidents/42"
    text = f"Update: {link} " + "Checkout is failing for card payments in the EU region. " * 8
    shortened = shorten_keeping_last_link(text)
    assert weighted_length(shortened) <= 280
    assert shortened.endswith(f"{ELLIPSIS} {link}")
    assert shortened.count(link) == 1
    plain = "no links here " * 30
    assert shorten_keeping_last_link(plain).endswith(ELLIPSIS)
