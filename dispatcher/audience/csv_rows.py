"""Import subscribers from a CSV file.

The file is UTF-8 (a byte-order mark, as Excel writes, is fine) with a header line naming the columns, in
any order. Column names are case-insensitive; spaces around names and values are ignored. Only ``name``
and one contact column are needed; every other column is optional.

| column           | meaning                                                                          |
|------------------|----------------------------------------------------------------------------------|
| `name`           | The person's or system's name. Optional.                                          |
| `email`          | Email address; checked for syntax (not deliverability) and normalised.           |
| `phone`          | Mobile number for SMS, stored in E.164 (`+447911123456`). Numbers without a      |
|                  | leading `+` are read in the default region given to the import (e.g. `US`, `GB`).|
| `webhook_url`    | `http://` or `https://` URL with a host, for webhook notifications.              |
| `webhook_secret` | Signing secret for that webhook: `whsec_` followed by base64 of 24 to 64 bytes.  |
|                  | Leave empty to have Tocsin generate one.                                         |
| `locale`         | Language for messages: `en`, `fr`, `en-GB`, `fr_CA`... Default `en`.             |
| `components`     | Components to follow, separated by `;` (`API;Dashboard`). Empty means all.       |
| `min_severity`   | Lowest severity to be told about: `minor` (default), `major` or `critical`.      |
| `internal`       | `true`/`false`, `yes`/`no`, `1`/`0`: staff who also get internal updates.         |
|                  | Default `false`.                                                                 |
| `external_id`    | Your own id for this subscriber (e.g. a CRM id). Optional, unique in the file.   |
| `region`         | Free text up to 50 characters (`eu`, `us-east`): for audience segments.           |
| `plan`           | Free text up to 50 characters (`free`, `enterprise`): for audience segments.     |
| `tags`           | Tags separated by `;` (`beta;vip`): for audience segments.                        |
| `channels`       | Only these channels, separated by `;` (`email;sms`). Empty: every channel the    |
|                  | row has a contact for. Each needs its contact column filled in.                  |
| `quiet_hours`    | `22:00-07:00`: non-critical updates wait until the end of this daily window.     |
| `timezone`       | IANA time zone of the quiet hours (`Europe/Paris`). Default `UTC`.               |

Every row needs at least one of `email`, `phone`, `webhook_url`. The same email, phone or external id on
two rows is an error on the later row. Empty lines are skipped. A file whose header line has no comma but
semicolons or tabs is read with that separator.

Every problem in the file is reported, each with its line number as an editor shows it (the header is
line 1), the column and the reason; rows with problems are left out of ``ImportReport.subscribers``.
Callers that must not import half a file check ``ImportReport.ok`` first.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from dispatcher.domain.locales import LOCALE_PATTERN
from dispatcher.domain.models import ChannelKind, ContactPoint, Severity, Subscriber
from dispatcher.domain.quiet_hours import check_timezone, parse_quiet_hours
from dispatcher.domain.text_safety import control_character

__all__ = ["COLUMNS", "ImportReport", "RowProblem", "parse_subscribers_csv"]

COLUMNS: tuple[str, ...] = (
    "name",
    "email",
    "phone",
    "webhook_url",
    "webhook_secret",
    "locale",
    "components",
    "min_severity",
    "internal",
    "external_id",
    "region",
    "plan",
    "tags",
    "channels",
    "quiet_hours",
    "timezone",
)
CONTACT_COLUMNS: tuple[str, ...] = ("email", "phone", "webhook_url")

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", ""}
_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with the file: ``line`` as an editor numbers it (header = 1), the column, why."""

    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass
class ImportReport:
    """Valid subscribers (with the line each came from) and every problem found."""

    subscribers: list[Subscriber] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    """``lines[i]`` is the line ``subscribers[i]`` was read from."""
    problems: list[RowProblem] = field(default_factory=list)
    rows_read: int = 0
    """Data rows seen (blank lines not counted), valid or not."""

    @property
    def ok(self) -> bool:
        return not self.problems


class _BadValue(ValueError):
    """A cell that cannot be used; the message is the reason shown to the user."""


def parse_subscribers_csv(
    source: Path | str | os.PathLike[str] | TextIO, default_region: str | None = None
) -> ImportReport:
    """Read and validate a subscriber CSV (a path, or an open text stream). No database access.

    ``default_region`` (ISO 3166 code such as ``"US"``) is how phone numbers without ``+`` are read;
    without it such numbers are a problem. Raises ``ValueError`` for an unknown region and ``OSError``
    if the path cannot be read; everything wrong *inside* the file is a ``RowProblem``.
    """
    region = default_region.upper() if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {default_region!r} (use an ISO code such as US, GB, FR)")

    report = ImportReport()
    text = _read_text(source, report)
    if text is None:
        return report
    text = text.removeprefix("\ufeff")
    if not text.strip():
        report.problems.append(RowProblem(1, "", _empty_file_reason()))
        return report

    reader = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    header_row = next(reader)
    columns = _check_header(header_row, report)
    if columns is None:
        return report
    _RowParser(columns, region, report).parse(reader)
    return report


def _empty_file_reason() -> str:
    return f"the file is empty: expected a header line naming the columns, e.g. {','.join(COLUMNS[:3])}"


def _read_text(source: Path | str | os.PathLike[str] | TextIO, report: ImportReport) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        data = Path(source).read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            report.problems.append(RowProblem(line, "", "the file is not UTF-8 text: save it as CSV UTF-8"))
            return None
    try:
        return source.read()
    except UnicodeDecodeError:
        report.problems.append(RowProblem(1, "", "the file is not UTF-8 text: save it as CSV UTF-8"))
        return None


def _dialect(text: str) -> type[csv.Dialect]:
    """Comma-separated, unless the header line has no comma but has semicolons or tabs."""
    first_line = text.split("\n", 1)[0]
    if "," not in first_line:
        for delimiter in (";", "\t"):
            if delimiter in first_line:

                class Custom(csv.excel):
                    pass

                Custom.delimiter = delimiter
                return Custom
    return csv.excel


def _check_header(header_row: list[str], report: ImportReport) -> list[str] | None:
    """Normalised column names, or None when the first line is not a usable header."""
    columns = [cell.strip().lower().replace(" ", "_") for cell in header_row]
    known = [c for c in columns if c in COLUMNS]
    if not known:
        shown = ", ".join(repr(c.strip()) for c in header_row[:4] if c.strip())
        report.problems.append(
            RowProblem(
                1,
                "",
                f"missing header: the first line must name the columns (e.g. {','.join(COLUMNS[:3])}), "
                f"found {shown or 'nothing'}",
            )
        )
        return None
    unknown = [header_row[i].strip() for i, c in enumerate(columns) if c not in COLUMNS and c]
    if unknown:
        report.problems.append(
            RowProblem(
                1,
                ", ".join(unknown),
                f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"(known columns: {', '.join(COLUMNS)})",
            )
        )
    if "" in columns:
        report.problems.append(RowProblem(1, "", "a column in the header has no name"))
    repeated = sorted({c for c in columns if c and columns.count(c) > 1})
    if repeated:
        report.problems.append(
            RowProblem(1, ", ".join(repeated), f"column named more than once: {', '.join(repeated)}")
        )
    if not any(c in columns for c in CONTACT_COLUMNS):
        report.problems.append(
            RowProblem(
                1, "", f"no contact column: the header needs at least one of {', '.join(CONTACT_COLUMNS)}"
            )
        )
    return columns


class _CsvReader(Protocol):
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...


class _RowParser:
    """Validates data rows one by one, remembering contact points to catch duplicates."""

    def __init__(self, columns: list[str], region: str | None, report: ImportReport) -> None:
        self.columns = columns
        self.region = region
        self.report = report
        self.seen: dict[str, dict[str, int]] = {"email": {}, "phone": {}, "external_id": {}}

    def parse(self, reader: _CsvReader) -> None:
        previous_end = reader.line_num  # where the header ended (quoted newlines can make it > 1)
        for row in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            self.report.rows_read += 1
            self._parse_row(line, row)

    def _parse_row(self, line: int, row: list[str]) -> None:
        problems: list[RowProblem] = []
        if len(row) > len(self.columns) and any(cell.strip() for cell in row[len(self.columns) :]):
            problems.append(
                RowProblem(line, "", f"row has {len(row)} fields but the header names {len(self.columns)}")
            )
        values = {
            column: row[i].strip() if i < len(row) else ""
            for i, column in enumerate(self.columns)
            if column in COLUMNS
        }
        for column, value in values.items():
            # NUL and other control characters: PostgreSQL cannot store them, and no one types them.
            unreadable = control_character(value)
            if unreadable is not None:
                problems.append(RowProblem(line, column, unreadable))

        def cell(column: str, check: Callable[[str], object], default: object = None) -> object:
            value = values.get(column, "")
            if not value:
                return default
            try:
                return check(value)
            except _BadValue as exc:
                problems.append(RowProblem(line, column, str(exc)))
                return None

        email = cell("email", _email)
        phone = cell("phone", self._phone)
        webhook_url = cell("webhook_url", _webhook_url)
        secret = cell("webhook_secret", _webhook_secret)
        locale = cell("locale", _locale, "en")
        components = cell("components", _components, [])
        min_severity = cell("min_severity", _severity, Severity.MINOR)
        internal = cell("internal", _boolean, False)
        external_id = values.get("external_id") or None
        region = cell("region", _label)
        plan = cell("plan", _label)
        tags = cell("tags", _tags, [])
        channels = cell("channels", _channels)
        quiet = cell("quiet_hours", _quiet_hours)
        timezone = cell("timezone", _timezone)

        if isinstance(channels, list):
            contact_of = {
                ChannelKind.EMAIL: "email",
                ChannelKind.SMS: "phone",
                ChannelKind.WEBHOOK: "webhook_url",
            }
            missing = [c.value for c in channels if not values.get(contact_of[c])]
            if missing:
                problems.append(
                    RowProblem(
                        line,
                        "channels",
                        f"{', '.join(missing)} chosen but the row has no "
                        f"{' or '.join(contact_of[ChannelKind(m)] for m in missing)}",
                    )
                )

        if not any(values.get(c) for c in CONTACT_COLUMNS):
            problems.append(RowProblem(line, "", "no contact point: give an email, phone or webhook_url"))
        if values.get("webhook_secret") and not values.get("webhook_url"):
            problems.append(RowProblem(line, "webhook_secret", "webhook_secret given without a webhook_url"))

        for column, key in (
            ("email", email.casefold() if isinstance(email, str) else None),
            ("phone", phone if isinstance(phone, str) else None),
            ("external_id", external_id),
        ):
            if key is None:
                continue
            earlier = self.seen[column].get(key)
            if earlier is not None:
                problems.append(
                    RowProblem(
                        line, column, f"duplicate {column} {values[column]!r}: already on line {earlier}"
                    )
                )
            else:
                self.seen[column][key] = line

        if problems:
            self.report.problems.extend(problems)
            return

        contact_points: list[ContactPoint] = []
        if isinstance(email, str):
            contact_points.append(ContactPoint(channel=ChannelKind.EMAIL, address=email))
        if isinstance(phone, str):
            contact_points.append(ContactPoint(channel=ChannelKind.SMS, address=phone))
        if isinstance(webhook_url, str):
            contact_points.append(
                ContactPoint(
                    channel=ChannelKind.WEBHOOK,
                    address=webhook_url,
                    secret=secret if isinstance(secret, str) else None,
                )
            )
        self.report.subscribers.append(
            Subscriber(
                external_id=external_id,
                name=values.get("name") or None,
                locale=str(locale),
                components=list(components) if isinstance(components, list) else [],
                min_severity=Severity(str(min_severity)),
                internal=bool(internal),
                contact_points=contact_points,
                region=region if isinstance(region, str) else None,
                plan=plan if isinstance(plan, str) else None,
                tags=list(tags) if isinstance(tags, list) else [],
                channels=channels if isinstance(channels, list) else None,
                quiet_start=quiet[0] if isinstance(quiet, tuple) else None,
                quiet_end=quiet[1] if isinstance(quiet, tuple) else None,
                timezone=timezone if isinstance(timezone, str) else None,
            )
        )
        self.report.lines.append(line)

    def _phone(self, value: str) -> str:
        try:
            return normalise_phone(value, self.region)
        except ValueError as exc:
            raise _BadValue(str(exc)) from None


def normalise_phone(value: str, region: str | None) -> str:
    """A phone number in E.164 (``+447911123456``); numbers without ``+`` are read in ``region``.
    ``ValueError`` says what is wrong."""
    if not value.startswith("+") and region is None:
        raise ValueError(
            f"{value!r} has no country code: write it as +<country code>… or give a default region"
        )
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number ({_phone_reason(exc)})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: str) -> str:
    """The normalised address; ``ValueError`` with the reason when it is not one."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None


def _phone_reason(exc: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "unreadable")


def _email(value: str) -> str:
    try:
        return normalise_email(value)
    except ValueError as exc:
        raise _BadValue(str(exc)) from None


def _webhook_url(value: str) -> str:
    if any(c.isspace() for c in value):
        raise _BadValue(f"{value!r} is not a URL: it contains spaces")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise _BadValue(f"{value!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _BadValue(f"{value!r} must start with https:// or http://")
    if not host:
        raise _BadValue(f"{value!r} has no host name")
    if len(value) > 2048:
        raise _BadValue("URL is longer than 2048 characters")
    return value


def _webhook_secret(value: str) -> str:
    if not value.startswith(_SECRET_PREFIX):
        raise _BadValue(f"must start with {_SECRET_PREFIX!r} followed by base64 (the value is not shown)")
    try:
        key = base64.b64decode(value[len(_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise _BadValue(f"the part after {_SECRET_PREFIX!r} is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise _BadValue(f"the key must be 24 to 64 bytes once decoded, this one is {len(key)}")
    return value


def _locale(value: str) -> str:
    if not LOCALE_PATTERN.match(value):
        raise _BadValue(f"{value!r} is not a locale such as en, fr or en-GB")
    lang, *rest = value.replace("_", "-").split("-")
    return "-".join([lang.lower(), *(part.upper() if len(part) == 2 else part for part in rest)])


def _components(value: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in value.split(";") if part.strip()))


def _label(value: str) -> str:
    if len(value) > 50:
        raise _BadValue(f"{value[:20]!r}… is longer than 50 characters")
    return value


def _tags(value: str) -> list[str]:
    tags = list(dict.fromkeys(part.strip() for part in value.split(";") if part.strip()))
    too_long = [t for t in tags if len(t) > 50]
    if too_long:
        raise _BadValue(f"tag {too_long[0][:20]!r}… is longer than 50 characters")
    return tags


DIRECT_CHANNELS = (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK)


def parse_channels(value: str) -> list[ChannelKind]:
    """``"email;sms"`` (or commas) -> channels a subscriber wants; ``ValueError`` naming a bad one."""
    chosen: list[ChannelKind] = []
    for part in re.split(r"[;,]", value):
        name = part.strip().lower()
        if not name:
            continue
        if name not in {c.value for c in DIRECT_CHANNELS}:
            known = ", ".join(c.value for c in DIRECT_CHANNELS)
            raise ValueError(f"{part.strip()!r} is not a channel a subscriber can choose (use {known})")
        if ChannelKind(name) not in chosen:
            chosen.append(ChannelKind(name))
    if not chosen:
        raise ValueError("no channel named")
    return chosen


def _channels(value: str) -> list[ChannelKind]:
    try:
        return parse_channels(value)
    except ValueError as exc:
        raise _BadValue(str(exc)) from None


def _quiet_hours(value: str) -> tuple[str, str]:
    try:
        return parse_quiet_hours(value)
    except ValueError as exc:
        raise _BadValue(str(exc)) from None


def _timezone(value: str) -> str:
    try:
        return check_timezone(value)
    except ValueError as exc:
        raise _BadValue(str(exc)) from None


def _severity(value: str) -> Severity:
    try:
        return Severity(value.lower())
    except ValueError:
        choices = ", ".join(s.value for s in Severity)
        raise _BadValue(f"{value!r} is not a severity (use {choices})") from None


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _BadValue(f"{value!r} is not true/false, yes/no or 1/0")
