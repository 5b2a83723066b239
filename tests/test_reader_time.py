"""Times as a reader reads them: their zone and its abbreviation, their language, the day when it is
not their today, and UTC beside it on broadcast channels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.domain.reader_time import ReaderClock, zone_abbreviation

# 23:40 UTC on 24 November: 18:40 in New York, 00:40 on the 25th in Paris.
NOW = datetime(2026, 11, 24, 23, 40, tzinfo=UTC)
SOON = datetime(2026, 11, 25, 0, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "locale", "shown"),
    [
        ("America/New_York", "en", "7:11 PM EST"),
        ("Europe/Paris", "fr", "01:11 CET"),
        ("UTC", "en", "tomorrow, 12:11 AM UTC"),
        ("Europe/London", "en-GB", "tomorrow, 00:11 GMT"),
        ("America/Sao_Paulo", "pt-BR", "21:11 UTC-3"),
        ("Asia/Kolkata", "en", "5:41 AM IST"),
        ("Canada/Newfoundland", "fr-CA", "20 h 41 NST"),
    ],
)
def test_a_time_reads_in_the_readers_zone_language_and_day(zone: str, locale: str, shown: str) -> None:
    assert ReaderClock(zone, NOW, locale).time(SOON) == shown


def test_a_time_further_away_names_its_date_and_a_past_one_says_yesterday() -> None:
    far = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert ReaderClock("America/New_York", NOW, "en").time(far) == "Sat, Nov 28, 4:00 AM EST"
    assert ReaderClock("Europe/Paris", NOW, "fr").time(far) == "sam. 28 nov. 10:00 CET"
    assert ReaderClock("UTC", NOW, "en").time(datetime(2027, 1, 2, 9, 0, tzinfo=UTC)) == (
        "Sat, Jan 2, 2027, 9:00 AM UTC"
    )
    assert ReaderClock("UTC", SOON, "fr").time(NOW) == "hier, 23:40 UTC"


def test_email_names_today_and_broadcast_adds_utc() -> None:
    assert ReaderClock("America/New_York", NOW, "en", always_day=True).time(SOON) == "today, 7:11 PM EST"
    assert ReaderClock("Europe/Paris", NOW, "fr", always_day=True).time(SOON) == "aujourd'hui, 01:11 CET"
    assert ReaderClock("Europe/Paris", NOW, "en", also_utc=True).time(SOON) == "1:11 AM CET (12:11 AM UTC)"
    assert ReaderClock("UTC", NOW, "en", also_utc=True).time(NOW) == "11:40 PM UTC", "UTC once is enough"


def test_summer_time_changes_the_abbreviation() -> None:
    july = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert ReaderClock("Europe/Paris", july, "en").time(july) == "2:00 PM CEST"
    assert ReaderClock("America/New_York", july, "en").time(july) == "8:00 AM EDT"


def test_a_language_babel_does_not_know_reads_english_and_text_stays_gsm_friendly() -> None:
    shown = ReaderClock("UTC", NOW, "xx").time(SOON)
    assert shown == "tomorrow, 12:11 AM UTC"
    assert "\u202f" not in shown and "\u2019" not in ReaderClock("UTC", NOW, "fr", always_day=True).time(NOW)


def test_zone_abbreviations_fall_back_to_an_offset() -> None:
    def at(zone: str) -> str:
        return zone_abbreviation(NOW.astimezone(ReaderClock(zone, NOW).tz))

    assert at("Asia/Tokyo") == "JST"
    assert at("Asia/Kathmandu") == "UTC+5:45"
    assert at("America/Argentina/Buenos_Aires") == "UTC-3"
    assert at("Etc/GMT") == "GMT"
