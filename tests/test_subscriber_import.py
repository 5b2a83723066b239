"""Importing subscribers from a CSV a person exported from a spreadsheet."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dispatcher.audience.csv_rows import RowProblem, parse_subscribers_csv
from dispatcher.domain.models import ChannelKind, Severity

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of key


def _write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "subscribers.csv"
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_a_clean_file_gives_subscribers_with_normalised_contacts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name,email,phone,webhook_url,webhook_secret,locale,components,min_severity,internal,external_id\n"
        "Ann Lee,ann@EXAMPLE.org,(202) 555-0143,,,en-gb,API; Dashboard,major,yes,crm-1\n"
        "Ops bot,,,https://hooks.example.org/tocsin,"
        f"{SECRET},,,critical,true,crm-2\n"
        "Zoë,zoe@example.fr,+33 6 12 34 56 78,,,fr,,,no,\n",
    )
    report = parse_subscribers_csv(path, default_region="US")

    assert report.ok and report.rows_read == 3 and report.lines == [2, 3, 4]
    ann, bot, zoe = report.subscribers
    assert ann.name == "Ann Lee" and ann.external_id == "crm-1"
    assert [(c.channel, c.address) for c in ann.contact_points] == [
        (ChannelKind.EMAIL, "ann@example.org"),
        (ChannelKind.SMS, "+12025550143"),
    ]
    assert (ann.locale, ann.components, ann.min_severity, ann.internal) == (
        "en-GB",
        ["API", "Dashboard"],
        Severity.MAJOR,
        True,
    )
    assert bot.contact_points[0].channel == ChannelKind.WEBHOOK
    assert bot.contact_points[0].secret == SECRET
    assert bot.min_severity == Severity.CRITICAL and bot.internal
    assert zoe.contact_points[1].address == "+33612345678"
    assert (zoe.locale, zoe.components, zoe.min_severity, zoe.internal) == ("fr", [], Severity.MINOR, False)


def test_every_bad_row_is_reported_with_its_line_and_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name,email,phone,min_severity\n"
        "Good,good@example.org,,\n"
        "Bad email,not-an-address,,\n"
        "Good too,,+447911123456,\n"
        "Bad phone,,+44 12,\n"
        "Bad severity,sev@example.org,,urgent\n",
    )
    report = parse_subscribers_csv(path)

    assert [(p.line, p.column) for p in report.problems] == [(3, "email"), (5, "phone"), (6, "min_severity")]
    assert "not-an-address" in report.problems[0].reason
    assert "not a valid phone number" in report.problems[1].reason
    assert report.problems[2].reason == "'urgent' is not a severity (use minor, major, critical)"
    assert str(report.problems[2]).startswith("line 6, min_severity: ")
    assert report.lines == [2, 4]  # the good rows are still parsed; the caller decides
    assert not report.ok


def test_national_numbers_need_a_default_region(tmp_path: Path) -> None:
    text = "name,phone\nUK mobile,07911 123456\n"
    assert parse_subscribers_csv(_write(tmp_path, text), default_region="GB").subscribers[0].contact_points[
        0
    ].address == ("+447911123456")
    problem = parse_subscribers_csv(_write(tmp_path, text)).problems[0]
    assert (problem.line, problem.column) == (2, "phone") and "country code" in problem.reason
    with pytest.raises(ValueError, match="unknown phone region"):
        parse_subscribers_csv(_write(tmp_path, text), default_region="XX")


def test_an_excel_bom_and_stray_whitespace_are_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, " Name , EMAIL \r\n  Ann  ,  ann@example.org  \r\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    report = parse_subscribers_csv(path)
    assert report.ok
    assert report.subscribers[0].name == "Ann"
    assert report.subscribers[0].contact_points[0].address == "ann@example.org"


def test_a_text_stream_with_a_bom_works_too() -> None:
    report = parse_subscribers_csv(io.StringIO("\ufeffemail\nann@example.org\n"))
    assert report.ok and len(report.subscribers) == 1


def test_unknown_columns_are_named_on_line_one(tmp_path: Path) -> None:
    report = parse_subscribers_csv(_write(tmp_path, "email,Colour,shoe size\nann@example.org,red,7\n"))
    header = [p for p in report.problems if p.line == 1]
    assert len(header) == 1
    assert "'Colour'" in header[0].reason and "'shoe size'" in header[0].reason
    assert "known columns: name, email" in header[0].reason


def test_duplicates_point_at_the_earlier_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "email,phone,external_id\n"
        "ann@example.org,+447911123456,a1\n"
        "bob@example.org,,b1\n"
        "ANN@example.org,,c1\n"
        ",+44 7911 123456,d1\n"
        "dan@example.org,,b1\n",
    )
    problems = parse_subscribers_csv(path).problems
    assert [(p.line, p.column) for p in problems] == [(4, "email"), (5, "phone"), (6, "external_id")]
    assert all("already on line" in p.reason for p in problems)
    assert problems[0].reason.endswith("line 2") and problems[2].reason.endswith("line 3")


def test_each_row_needs_a_contact_point_and_valid_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name,email,webhook_url,webhook_secret,internal,locale\n"
        "Nobody,,,,,\n"
        "FTP hook,,ftp://example.org/x,,,\n"
        "Short secret,,https://example.org/h,whsec_c2hvcnQ=,,\n"
        "Secret alone,a@example.org,,whsec_x,,\n"
        "Maybe,b@example.org,,,maybe,\n"
        "Klingon,c@example.org,,,,tlh-!!\n",
    )
    problems = parse_subscribers_csv(path).problems
    assert [(p.line, p.column) for p in problems] == [
        (2, ""),
        (3, "webhook_url"),
        (4, "webhook_secret"),
        (5, "webhook_secret"),
        (5, "webhook_secret"),
        (6, "internal"),
        (7, "locale"),
    ]
    assert "no contact point" in problems[0].reason
    assert "24 to 64 bytes" in problems[2].reason
    assert "without a webhook_url" in problems[4].reason


def test_an_empty_file_says_what_it_expected(tmp_path: Path) -> None:
    assert parse_subscribers_csv(_write(tmp_path, "")).problems == [
        RowProblem(
            1, "", "the file is empty: expected a header line naming the columns, e.g. name,email,phone"
        )
    ]


def test_a_file_without_a_header_is_spotted(tmp_path: Path) -> None:
    (problem,) = parse_subscribers_csv(_write(tmp_path, "Ann,ann@example.org\n")).problems
    assert problem.line == 1 and problem.reason.startswith("missing header")


def test_line_numbers_match_the_editor_with_blank_and_multiline_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, 'name,email\n\n"Ann\nLee",ann@example.org\nBob,bob@\n')
    report = parse_subscribers_csv(path)
    assert report.lines == [3]
    assert [(p.line, p.column) for p in report.problems] == [(5, "email")]


def test_semicolon_separated_files_from_european_excel(tmp_path: Path) -> None:
    report = parse_subscribers_csv(_write(tmp_path, 'name;email;components\nAnn;ann@example.org;"API;Web"\n'))
    assert report.ok and report.subscribers[0].components == ["API", "Web"]


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,email\nZoë,zoe@example.org\n".encode("latin-1"))
    (problem,) = parse_subscribers_csv(path).problems
    assert problem.line == 2 and "UTF-8" in problem.reason
