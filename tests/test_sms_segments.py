"""SMS segment counting and shortening (pure functions, known examples and seeded random texts)."""

from __future__ import annotations

import random

import pytest

from channels.text.sms_segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentCount,
    count_segments,
    fit_to_segments,
    is_gsm7,
)

LINK = "https://status.example.com/i/42"

# ------------------------------------------------------------------------------------------ counting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentCount("GSM-7", 0, 1)),
        ("a", SegmentCount("GSM-7", 1, 1)),
        ("a" * 160, SegmentCount("GSM-7", 160, 1)),
        ("a" * 161, SegmentCount("GSM-7", 161, 2)),
        ("a" * 306, SegmentCount("GSM-7", 306, 2)),
        ("a" * 307, SegmentCount("GSM-7", 307, 3)),
        ("a" * 459, SegmentCount("GSM-7", 459, 3)),
        ("a" * 460, SegmentCount("GSM-7", 460, 4)),
        ("é" * 160, SegmentCount("GSM-7", 160, 1)),  # é is GSM-7: a trap for naive "ASCII" checks
        ("ж" * 70, SegmentCount("UCS-2", 70, 1)),
        ("ж" * 71, SegmentCount("UCS-2", 71, 2)),
        ("ж" * 134, SegmentCount("UCS-2", 134, 2)),
        ("ж" * 135, SegmentCount("UCS-2", 135, 3)),
        ("€", SegmentCount("GSM-7", 2, 1)),
        ("€" * 80, SegmentCount("GSM-7", 160, 1)),
        ("€" * 81, SegmentCount("GSM-7", 162, 2)),
        ("€" * 153, SegmentCount("GSM-7", 306, 3)),  # 76 per split part: an escape never straddles two
        ("a" * 159 + "€", SegmentCount("GSM-7", 161, 2)),
        ("😀", SegmentCount("UCS-2", 2, 1)),
        ("😀" * 35, SegmentCount("UCS-2", 70, 1)),
        ("😀" * 36, SegmentCount("UCS-2", 72, 2)),
        ("😀" * 67, SegmentCount("UCS-2", 134, 3)),  # 33 pairs per 67-unit part: a pair is never split
        ("a" * 69 + "😀", SegmentCount("UCS-2", 71, 2)),
        ("Hello\nworld\r\n", SegmentCount("GSM-7", 13, 1)),
    ],
)
def test_known_counts(text, expected):
    assert count_segments(text) == expected


def test_one_character_outside_gsm7_switches_the_whole_text_to_ucs2():
    gsm = "Checkout is down. " * 8  # 144 septets: one GSM-7 segment
    assert count_segments(gsm) == SegmentCount("GSM-7", 144, 1)
    assert count_segments(gsm + "…") == SegmentCount("UCS-2", 145, 3)
    assert count_segments(gsm + "\u2019") == SegmentCount("UCS-2", 145, 3)  # a curly apostrophe


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_every_extension_character_counts_double(char):
    assert count_segments(char) == SegmentCount("GSM-7", 2, 1)
    assert count_segments("a" * 158 + char).segments == 1
    assert count_segments("a" * 159 + char).segments == 2


def test_every_basic_character_counts_once():
    assert count_segments("".join(sorted(GSM7_BASIC))) == SegmentCount("GSM-7", len(GSM7_BASIC), 1)
    assert len(GSM7_BASIC) == 127  # 128 codes minus ESC


@pytest.mark.parametrize("char", ["á", "í", "ó", "ú", "`", "\t", "\u00a0", "…", "\u2013", "ж", "中"])
def test_common_non_gsm_characters(char):
    assert not is_gsm7(char)
    assert count_segments(char).encoding == "UCS-2"


def test_gsm_capital_c_cedilla_and_greek_capitals_are_gsm():
    assert is_gsm7("Ç ΔΦΓΛΩΠΨΣΘΞ ¤ ¡¿ §")


# ------------------------------------------------------------------------------------------ fitting


def test_a_text_that_fits_is_returned_unchanged():
    text = "a" * 160
    assert fit_to_segments(text, 1, LINK) is text
    assert fit_to_segments("ж" * 134, 2, LINK) == "ж" * 134


def test_a_long_gsm_text_is_cut_at_a_word_and_ends_with_the_link():
    text = " ".join(["outage"] * 100)  # 699 septets
    result = fit_to_segments(text, 1, LINK)
    assert result.endswith("... " + LINK)
    assert count_segments(result).encoding == "GSM-7"
    assert count_segments(result).segments == 1
    prefix = result.removesuffix("... " + LINK)
    assert prefix == " ".join(["outage"] * (len(prefix.split(" "))))  # whole words only
    # The longest that fits: one more word would not.
    assert count_segments(prefix + " outage... " + LINK).segments > 1


def test_a_gsm_text_never_gets_the_unicode_ellipsis():
    result = fit_to_segments("word " * 200, 2, LINK)
    assert "…" not in result and result.endswith("... " + LINK)
    assert count_segments(result) == SegmentCount("GSM-7", count_segments(result).units, 2)


def test_a_ucs2_text_gets_the_single_unit_ellipsis():
    text = "Сбой оплаты: мы выясняем причину и сообщим новости в течение часа. " * 5
    result = fit_to_segments(text, 2, LINK)
    assert result.endswith("… " + LINK)
    assert count_segments(result).encoding == "UCS-2"
    assert count_segments(result).segments <= 2


def test_without_a_link_only_the_ellipsis_is_appended():
    assert fit_to_segments("word " * 100, 1, None).endswith("word...")
    assert count_segments(fit_to_segments("word " * 100, 1, None)).segments == 1
    assert fit_to_segments("слово " * 100, 1, None).endswith("слово…")


def test_cutting_off_the_only_non_gsm_character_regains_gsm_room():
    text = "a " * 100 + "😀"  # UCS-2 because of the emoji at the very end
    result = fit_to_segments(text, 1, LINK)
    assert count_segments(result).encoding == "GSM-7"
    assert result.endswith("... " + LINK)
    assert len(result) > 100  # far more than the 70 UCS-2 would allow


def test_dangling_separators_are_dropped_before_the_ellipsis():
    text = "Checkout is failing, " + "payments are delayed, " * 20
    result = fit_to_segments(text, 1, None)
    assert result.endswith("...") and not result.endswith(",...")
    assert count_segments(result).segments == 1


def test_a_single_huge_word_is_cut_inside_it():
    result = fit_to_segments("x" * 500, 1, LINK)
    assert result == "x" * (160 - len("... ") - len(LINK)) + "... " + LINK
    assert count_segments(result).units == 160


def test_a_link_that_cannot_fit_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        fit_to_segments("x " * 200, 1, "https://example.com/" + "p" * 200)
    with pytest.raises(ValueError, match="max_segments"):
        fit_to_segments("text", 0, LINK)


def test_a_non_gsm_link_makes_the_result_ucs2_and_uses_the_unicode_ellipsis():
    result = fit_to_segments("word " * 100, 2, "https://статус.example/i/1")
    assert result.endswith("… https://статус.example/i/1")
    assert count_segments(result).segments <= 2


ALPHABETS = {
    "gsm": "abcdefghij klmnop qrstuvwxyz ABC 0123 .,!? ",
    "gsm_ext": "abc def {}[]€ ghi ~|^ jkl \\ ",
    "ucs2": "abc def жзи клм 中文 ",
    "emoji": "abc 😀 def 🚨 ghi ",
    "mixed": "abc € def ж 😀 ghi [] ",
}


@pytest.mark.parametrize("alphabet", sorted(ALPHABETS))
@pytest.mark.parametrize("max_segments", [1, 2, 3, 6, 10])
@pytest.mark.parametrize("with_link", [True, False])
def test_fit_results_always_fit_and_end_with_the_link(alphabet, max_segments, with_link):
    rng = random.Random(f"{alphabet}-{max_segments}-{with_link}")
    link = LINK if with_link else None
    for _ in range(40):
        text = "".join(rng.choice(ALPHABETS[alphabet]) for _ in range(rng.randint(1, 2000)))
        result = fit_to_segments(text, max_segments, link)
        counted = count_segments(result)
        assert counted.segments <= max_segments, (text, result)
        if count_segments(text).segments <= max_segments:
            assert result == text
            continue
        ending = ("..." if counted.encoding == "GSM-7" else "…") + (" " + LINK if link else "")
        assert result.endswith(ending), result
        if counted.encoding == "GSM-7":
            assert "…" not in result
        kept = result.removesuffix(ending)
        assert text.startswith(kept)
