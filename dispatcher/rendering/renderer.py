"""Render one incident update into a ``channels.base.Message`` for one channel and locale.

Templates are Jinja2 files, looked up in this order (first found wins):

1. ``<user_dir>/<locale>/<channel>/<file>``, then the packaged ``<locale>/<channel>/<file>``, first for
   the full locale (``fr-CA``), then for its language (``fr``);
2. ``<user_dir>/<channel>/<file>``, then the packaged default (English) ``<channel>/<file>``.

So a user can override any single file, and a subscriber never gets English when a template in their
language exists. Templates render in a sandbox with ``StrictUndefined`` (a typo is an error, never a
silent blank); only ``.html`` templates are autoescaped.

Each template sees ``incident`` (id, title, kind, status, severity, components, opened_at, and a
maintenance window's starts_at and ends_at), ``update`` (id, status, message, next_update_at,
published_at, and ``internal``: staff only, marked INTERNAL), ``organisation``, ``status_page_url`` (or
none) and ``locale``, and what makes the copy the reader's own:

* ``times``: every time a person reads, as the reader reads it (``dispatcher.domain.reader_time``):
  ``next_update``, ``started``, ``posted``, ``window_start``, ``window_end`` (none when there is none),
  and each as ``<name>_iso`` (UTC, for ``<time datetime>``);
* ``language_fallback`` (the reader's language has no text: this is the organisation's default one) and
  ``text_language`` (its name, in the reader's language: "anglais");
* ``manage_url``: email only, where each recipient's own "manage or stop these updates" link goes (the
  email adapter puts the link there per recipient), or none when links cannot be made;
* ``sms_opt_out_hint``: the SMS must end with how to stop (a North American number);
* ``body_start`` / ``body_end``: marks around the part of a short message (SMS, X) that may be cut to
  fit its budget (``channels.text.fit``); the head and the tail never are. ``extra_start`` /
  ``extra_end`` mark, inside it, what is left out first (the list of affected components).

``update.message`` is already the reader's text: their language's, and the channel's own short (SMS,
X) or long (email) text when the update has one (``dispatcher.domain.update_texts``); ``{started}`` in
it reads as ``times.started``. Filters: ``utc_hhmm`` ("14:30"), ``utc_datetime`` ("2024-03-01 14:30
UTC"), ``iso_utc`` ("2024-03-01T14:30:00Z", none stays none) and ``paragraphs`` (HTML paragraphs).
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, field_validator

from channels.base import MANAGE_URL_PLACEHOLDER, ChannelKind, Message
from channels.text.fit import BODY_END, BODY_START, EXTRA_END, EXTRA_START, Budget, Fitted, fit, strip_marks
from channels.text.sms_segments import gsm_friendly
from dispatcher.config.resources import templates_root
from dispatcher.domain.locales import DEFAULT_LOCALE, LOCALE_PATTERN, locale_candidates
from dispatcher.domain.models import Incident, IncidentStatus, Severity, Update
from dispatcher.domain.reader_time import ReaderClock, babel_locale
from dispatcher.domain.update_texts import LocaleText, pick_text

__all__ = [
    "STARTED_TOKEN",
    "TEMPLATE_FILES",
    "RenderContext",
    "Rendered",
    "Renderer",
    "TemplateProblem",
    "packaged_templates_dir",
    "sample_contexts",
    "validate_templates",
]

TEMPLATE_FILES: dict[ChannelKind, dict[str, str]] = {
    ChannelKind.EMAIL: {
        "subject": "email/subject.txt.j2",
        "text": "email/body.txt.j2",
        "html": "email/body.html.j2",
    },
    ChannelKind.SMS: {"text": "sms/body.txt.j2"},
    ChannelKind.SOCIAL: {"text": "social/body.txt.j2"},
    ChannelKind.WEBHOOK: {"json": "webhook/body.json.j2"},
    ChannelKind.CHAT: {"text": "chat/body.md.j2"},
}
"""Channel kind -> which part of the ``Message`` comes from which template file."""



class TemplateProblem(Exception):
    """A template that cannot be used: missing, syntax error, undefined variable, bad output.

    ``str()`` is one line naming the template file and line: ``/path/email/subject.txt.j2:3: ...``.
    """

    def __init__(self, template: str, line: int | None, reason: str) -> None:
        self.template = template
        self.line = line
        self.reason = " ".join(reason.split())
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {self.reason}")


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EarlierUpdate(BaseModel):
    """An update of the same incident the recipient did not get (held back or superseded): the next
    message they do get carries it, so nothing they were owed is silently dropped."""

    model_config = ConfigDict(frozen=True)

    id: int
    status: IncidentStatus
    message: str
    published_at: datetime


class RenderContext(BaseModel):
    """Everything a template may show about one update. Build it with ``from_models`` when you can."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incident_id: int
    incident_title: str
    incident_kind: str = "incident"
    """``incident`` or ``maintenance`` (a planned window): templates head the message accordingly."""
    incident_status: IncidentStatus
    incident_severity: Severity
    components: tuple[str, ...] = ()
    opened_at: datetime
    update_id: int
    update_status: IncidentStatus
    message: str
    next_update_at: datetime | None = None
    published_at: datetime
    organisation: str
    status_page_url: str | None = None
    earlier: tuple[EarlierUpdate, ...] = ()
    internal: bool = False
    """For staff only (an internal update or a reminder): templates mark it INTERNAL, with a staff footer."""
    starts_at: datetime | None = None
    """A maintenance window's start and end (templates show the window, not when it was scheduled)."""
    ends_at: datetime | None = None
    texts: dict[str, LocaleText] = {}
    """The update's words in other languages and per channel (``dispatcher.domain.update_texts``)."""
    default_locale: str = DEFAULT_LOCALE
    """The language ``message`` is in: readers of a language without a text get it, marked."""
    manage_url: str | None = None
    """Email: ``channels.base.MANAGE_URL_PLACEHOLDER`` when each recipient gets their own link."""

    @field_validator("opened_at", "published_at", "next_update_at", "starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)

    @classmethod
    def from_models(
        cls, incident: Incident, update: Update, organisation: str, status_page_url: str | None = None
    ) -> RenderContext:
        return cls(
            incident_id=incident.id,
            incident_title=incident.title,
            incident_kind=incident.kind,
            incident_status=incident.status,
            incident_severity=incident.severity,
            components=tuple(incident.components),
            opened_at=incident.opened_at,
            update_id=update.id,
            update_status=update.status,
            message=update.message,
            next_update_at=update.next_update_at,
            published_at=update.published_at,
            organisation=organisation,
            status_page_url=status_page_url,
            internal=update.audience.value == "internal",
            starts_at=incident.starts_at,
            ends_at=incident.ends_at,
            texts=update.texts or {},
        )

    @property
    def started_at(self) -> datetime:
        """When it started, as readers are told: a maintenance window's start, else the opening."""
        return self.starts_at if self.incident_kind == "maintenance" and self.starts_at else self.opened_at

    def reader_times(self, clock: ReaderClock) -> dict[str, str | None]:
        """Every time a person reads, as ``clock``'s reader reads it, and in UTC for machines."""
        window_end = None
        if self.starts_at is not None and self.ends_at is not None:
            same_day = clock.local(self.starts_at).date() == clock.local(self.ends_at).date()
            window_end = clock.time(self.ends_at, day=not same_day)
        points = {
            "next_update": self.next_update_at,
            "started": self.started_at,
            "posted": self.published_at,
            "window_start": self.starts_at,
            "window_end": self.ends_at,
        }
        times: dict[str, str | None] = {f"{name}_iso": _iso_utc(at) for name, at in points.items()}
        times.update({name: None if at is None else clock.time(at) for name, at in points.items()})
        times["window_end"] = window_end
        return times

    def template_vars(
        self,
        locale: str,
        channel: ChannelKind = ChannelKind.EMAIL,
        clock: ReaderClock | None = None,
        sms_opt_out_hint: bool = False,
    ) -> dict[str, Any]:
        """The names a template sees: plain dicts, strings and datetimes only (sandbox-friendly)."""
        clock = clock or ReaderClock("UTC", self.published_at, locale)
        picked = pick_text(self.message, self.texts, self.default_locale, locale, channel)
        times = self.reader_times(clock)
        reader_language = babel_locale(clock.locale)
        # The marker is for a reader whose layout is in another language than the text they get.
        fallback = picked.fallback and reader_language.language != babel_locale(picked.locale).language
        return {
            "incident": {
                "id": self.incident_id,
                "title": self.incident_title,
                "kind": self.incident_kind,
                "status": str(self.incident_status.value),
                "severity": str(self.incident_severity.value),
                "components": list(self.components),
                "opened_at": self.opened_at,
                "starts_at": self.starts_at,
                "ends_at": self.ends_at,
            },
            "update": {
                "id": self.update_id,
                "status": str(self.update_status.value),
                "message": with_times(picked.text, times),
                "next_update_at": self.next_update_at,
                "published_at": self.published_at,
                "internal": self.internal,
            },
            "organisation": self.organisation,
            "status_page_url": self.status_page_url,
            "earlier": [
                {
                    "id": e.id,
                    "status": str(e.status.value),
                    "message": e.message,
                    "published_at": _as_utc(e.published_at),
                    "posted": clock.time(e.published_at),
                }
                for e in self.earlier
            ],
            "locale": locale,
            "times": times,
            "language_fallback": fallback,
            "text_language": babel_locale(picked.locale).get_language_name(reader_language) or picked.locale,
            "manage_url": self.manage_url if channel is ChannelKind.EMAIL else None,
            "sms_opt_out_hint": sms_opt_out_hint and channel is ChannelKind.SMS,
            "body_start": BODY_START,
            "body_end": BODY_END,
            "extra_start": EXTRA_START,
            "extra_end": EXTRA_END,
        }


STARTED_TOKEN = "{started}"
"""Written in a text (a message template's ``Since {started}, …``), it reads as each reader's time."""


def with_times(text: str, times: dict[str, str | None]) -> str:
    """``text`` with ``{started}`` as the reader reads it."""
    started = times.get("started")
    return text.replace(STARTED_TOKEN, started) if started and STARTED_TOKEN in text else text


# --- filters -------------------------------------------------------------------------------------


def _utc_hhmm(value: datetime) -> str:
    return _as_utc(value).strftime("%H:%M")


def _utc_datetime(value: datetime) -> str:
    return _as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _as_utc(value).isoformat().replace("+00:00", "Z")


def _paragraphs(value: str) -> Markup:
    """Plain text to HTML: blank lines separate paragraphs, single newlines become <br>. Escapes."""
    blocks = [b for b in re.split(r"\n\s*\n", value.strip()) if b.strip()]
    html = "".join(
        "<p>" + str(Markup("<br>\n").join(escape(line) for line in block.splitlines())) + "</p>\n"
        for block in blocks
    )
    return Markup(html)


FILTERS: dict[str, Callable[..., Any]] = {
    "utc_hhmm": _utc_hhmm,
    "utc_datetime": _utc_datetime,
    "iso_utc": _iso_utc,
    "paragraphs": _paragraphs,
}


# --- locating templates --------------------------------------------------------------------------


def packaged_templates_dir() -> Path:
    """The built-in templates (``dispatcher.config.resources``)."""
    return templates_root()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _tidy_block(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, no blank lines at the ends."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


@dataclass(frozen=True)
class Rendered:
    """A message as one reader gets it, and what had to be done to it."""

    message: Message
    shortened: bool = False
    """Its body was cut to fit the channel's budget (SMS segments, X weighted length)."""
    over_budget: bool = False
    """Even cut, it is longer than the budget (the status, promise and link alone do not fit)."""
    language_fallback: bool = False
    """The reader's language has no text: they read the organisation's default language."""


@dataclass(frozen=True)
class _Rendered:
    text: str
    template: Template


class Renderer:
    """Renders updates with the packaged templates, overridden file by file from ``user_dir``."""

    def __init__(self, user_dir: Path | None = None) -> None:
        if user_dir is not None and not Path(user_dir).is_dir():
            raise TemplateProblem(str(user_dir), None, "template directory does not exist")
        self.user_dir = Path(user_dir).resolve() if user_dir is not None else None
        self.packaged_dir = packaged_templates_dir()
        self.search_path = [p for p in (self.user_dir, self.packaged_dir) if p is not None]
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader([str(p) for p in self.search_path]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(FILTERS)

    def render(
        self,
        kind: ChannelKind,
        context: RenderContext,
        locale: str = DEFAULT_LOCALE,
        *,
        zone: str | None = None,
        now: datetime | None = None,
        sms_opt_out_hint: bool = False,
        budget: Budget | None = None,
    ) -> Message:
        """Render ``context`` for channel ``kind`` in ``locale``; raises ``TemplateProblem``."""
        return self.render_for_reader(
            kind, context, locale, zone=zone, now=now, sms_opt_out_hint=sms_opt_out_hint, budget=budget
        ).message

    def render_for_reader(
        self,
        kind: ChannelKind,
        context: RenderContext,
        locale: str = DEFAULT_LOCALE,
        *,
        zone: str | None = None,
        now: datetime | None = None,
        sms_opt_out_hint: bool = False,
        budget: Budget | None = None,
    ) -> Rendered:
        """The message a reader in ``locale`` and time zone ``zone`` (default UTC) reads at ``now``
        (default: when it was published), shortened to ``budget`` if one is given.

        Email names the day of every time (it is read later); broadcast channels add UTC."""
        kind = ChannelKind(kind)
        clock = self.reader_clock(kind, locale, zone, now or context.published_at)
        names = TEMPLATE_FILES[kind]
        variables = context.template_vars(locale, kind, clock, sms_opt_out_hint)
        parts = {part: self._render_one(name, locale, variables) for part, name in names.items()}

        subject = context.incident_title
        html: str | None = None
        json_body: str | None = None
        fitted = Fitted("")
        if kind == ChannelKind.EMAIL:
            subject = _one_line(strip_marks(parts["subject"].text))
            text = _tidy_block(strip_marks(parts["text"].text)) + "\n"
            html = strip_marks(parts["html"].text).strip() + "\n"
        elif kind == ChannelKind.WEBHOOK:
            json_body = self._checked_json(parts["json"])
            text = _one_line(f"{context.incident_title}: {variables['update']['message']}")
        elif kind == ChannelKind.CHAT:
            text = _tidy_block(strip_marks(parts["text"].text))
        else:  # SMS, social: one paragraph, every run of whitespace a single space
            text = _one_line(parts["text"].text)
            if kind == ChannelKind.SMS:
                text = gsm_friendly(text)
            fitted = fit(text, budget, context.status_page_url) if budget else Fitted(strip_marks(text))
            text = _one_line(fitted.text)

        for part, rendered in parts.items():
            if part != "json" and not strip_marks(rendered.text).strip():
                raise TemplateProblem(_filename(rendered.template), None, "rendered an empty text")
        if not subject:
            raise TemplateProblem(
                _filename(parts.get("subject", parts[next(iter(parts))]).template),
                None,
                "rendered an empty subject",
            )
        message = Message(
            kind=kind,
            update_id=context.update_id,
            incident_id=context.incident_id,
            subject=subject,
            text=text,
            html=html,
            json_body=json_body,
        )
        return Rendered(
            message,
            shortened=fitted.shortened,
            over_budget=fitted.over_budget,
            language_fallback=bool(variables["language_fallback"]),
        )

    def reader_clock(self, kind: ChannelKind, locale: str, zone: str | None, now: datetime) -> ReaderClock:
        """How a reader in ``locale`` and ``zone`` (None: UTC) reads times on ``kind`` at ``now``: email
        names the day of every time (it is read later), broadcast channels add UTC."""
        return ReaderClock(
            zone or "UTC",
            now,
            self.layout_locale(locale),
            also_utc=ChannelKind(kind).is_broadcast,
            always_day=kind is ChannelKind.EMAIL,
        )

    def layout_locale(self, locale: str) -> str:
        """The locale the layout speaks for a reader in ``locale``: theirs when there are templates in
        their language (the default ones are English), else English, so that dates, "tomorrow" and
        language names never mix two languages in one message."""
        candidates = locale_candidates(locale)
        if not candidates:
            return DEFAULT_LOCALE
        language = candidates[-1]
        if language == DEFAULT_LOCALE or any((root / language).is_dir() for root in self.search_path):
            return candidates[0]
        return DEFAULT_LOCALE

    def template_for(self, name: str, locale: str) -> Template:
        """The template that ``name`` (e.g. ``"sms/body.txt.j2"``) resolves to for ``locale``."""
        candidates = [f"{loc}/{name}" for loc in locale_candidates(locale)] + [name]
        try:
            return self.env.select_template(candidates)
        except TemplateSyntaxError as exc:
            raise _syntax_problem(exc, name) from None
        except TemplateError as exc:
            raise TemplateProblem(name, None, f"{type(exc).__name__}: {exc}") from None

    def _render_one(self, name: str, locale: str, variables: dict[str, Any]) -> _Rendered:
        template = self.template_for(name, locale)
        try:
            return _Rendered(template.render(variables), template)
        except TemplateSyntaxError as exc:  # e.g. an imported macro file with a syntax error
            raise _syntax_problem(exc, name) from None
        except Exception as exc:
            filename, line = self._template_frame(exc, template)
            if isinstance(exc, SecurityError):
                label = "not allowed in the template sandbox"
            elif isinstance(exc, UndefinedError):
                label = "undefined"
            else:
                label = type(exc).__name__
            raise TemplateProblem(filename, line, f"{label}: {exc}") from None

    def _template_frame(self, exc: BaseException, template: Template) -> tuple[str, int | None]:
        """The deepest traceback frame inside a template file (Jinja rewrites frames to template lines)."""
        roots = tuple(str(p) for p in self.search_path)
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.startswith(roots) and not frame.filename.endswith(".py"):
                return frame.filename, frame.lineno
        return _filename(template), None

    @staticmethod
    def _checked_json(rendered: _Rendered) -> str:
        try:
            document = json.loads(rendered.text)
        except json.JSONDecodeError as exc:
            raise TemplateProblem(
                _filename(rendered.template),
                None,
                f"rendered output is not valid JSON: {exc.msg} "
                f"at output line {exc.lineno} column {exc.colno}",
            ) from None
        if not isinstance(document, dict):
            raise TemplateProblem(_filename(rendered.template), None, "rendered JSON must be an object")
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _syntax_problem(exc: TemplateSyntaxError, name: str) -> TemplateProblem:
    return TemplateProblem(exc.filename or exc.name or name, exc.lineno, f"syntax error: {exc.message}")


def _filename(template: Template) -> str:
    return template.filename or template.name or "<template>"


# --- checking a template folder ------------------------------------------------------------------


def sample_contexts() -> list[RenderContext]:
    """Contexts that walk every branch a stock template has: an open incident (with a French text and
    each recipient's own link), a resolved one, a staff-only reminder and a maintenance window."""
    opened = datetime(2024, 3, 1, 13, 2, tzinfo=UTC)
    open_incident = RenderContext(
        incident_id=42,
        incident_title="Elevated error rates on the API",
        incident_status=IncidentStatus.IDENTIFIED,
        incident_severity=Severity.MAJOR,
        components=("API", "Dashboard"),
        opened_at=opened,
        update_id=7,
        update_status=IncidentStatus.IDENTIFIED,
        message="We found the cause <a faulty deploy> & are rolling it back.\n\nNo data was lost.",
        next_update_at=datetime(2024, 3, 1, 14, 30, tzinfo=UTC),
        published_at=datetime(2024, 3, 1, 13, 45, tzinfo=UTC),
        organisation="Example Corp",
        status_page_url="https://status.example.com",
        texts={"fr": LocaleText(message="Nous avons trouvé la cause depuis {started}.", sms="Cause.")},
        manage_url=MANAGE_URL_PLACEHOLDER,
        earlier=(
            EarlierUpdate(
                id=6,
                status=IncidentStatus.INVESTIGATING,
                message="We are looking into errors.",
                published_at=datetime(2024, 3, 1, 13, 10, tzinfo=UTC),
            ),
        ),
    )
    maintenance = open_incident.model_copy(
        update={
            "incident_kind": "maintenance",
            "starts_at": datetime(2024, 3, 2, 2, 0, tzinfo=UTC),
            "ends_at": datetime(2024, 3, 2, 4, 0, tzinfo=UTC),
            "texts": {},
            "earlier": (),
        }
    )
    resolved = open_incident.model_copy(
        update={
            "incident_status": IncidentStatus.RESOLVED,
            "update_status": IncidentStatus.RESOLVED,
            "components": (),
            "next_update_at": None,
            "status_page_url": None,
            "message": "Résolu: all systems normal.",
            "texts": {},
            "manage_url": None,
            "earlier": (),
        }
    )
    internal = open_incident.model_copy(
        update={"internal": True, "message": "Reminder: update due.", "texts": {}, "manage_url": None}
    )
    return [open_incident, resolved, internal, maintenance]


def _locale_dirs(roots: Iterable[Path]) -> list[str]:
    kinds = {kind.value for kind in ChannelKind}
    found: set[str] = set()
    for root in roots:
        for child in root.iterdir() if root.is_dir() else ():
            if child.is_dir() and child.name not in kinds and LOCALE_PATTERN.match(child.name):
                found.add(child.name)
    return sorted(found)


def validate_templates(user_dir: Path | None = None) -> list[TemplateProblem]:
    """Every problem a template set has, for ``tocsin templates check``; ``[]`` means all good.

    Compiles every ``.j2`` file under ``user_dir``, flags files Tocsin would never use (a misspelt
    name), and renders every channel in every locale found with sample contexts.
    """
    problems: dict[str, TemplateProblem] = {}

    def add(found: TemplateProblem) -> None:
        problems.setdefault(str(found), found)

    try:
        renderer = Renderer(user_dir)
    except TemplateProblem as problem:
        return [problem]

    known = {name for names in TEMPLATE_FILES.values() for name in names.values()}
    if renderer.user_dir is not None:
        for path in sorted(renderer.user_dir.rglob("*.j2")):
            relative = path.relative_to(renderer.user_dir).as_posix()
            try:
                renderer.env.parse(path.read_text(encoding="utf-8"), relative, str(path))
            except TemplateSyntaxError as exc:
                add(TemplateProblem(str(path), exc.lineno, f"syntax error: {exc.message}"))
            except (OSError, UnicodeDecodeError) as exc:
                add(TemplateProblem(str(path), None, f"cannot read: {exc}"))
            parts = relative.split("/")
            unlocalised = "/".join(parts[1:]) if len(parts) == 3 else relative
            # The status page adapter renders its own templates (statuspage/…) from the same folder.
            own_renderer = parts[0] == "statuspage"
            if not path.name.startswith("_") and not own_renderer and unlocalised not in known:
                known_list = ", ".join(sorted(known))
                add(TemplateProblem(str(path), None, f"not a template Tocsin uses (known: {known_list})"))

    for locale in [DEFAULT_LOCALE, *_locale_dirs(renderer.search_path)]:
        for kind in TEMPLATE_FILES:
            for context in sample_contexts():
                try:
                    for zone in ("UTC", "America/New_York"):
                        renderer.render(kind, context, locale, zone=zone, sms_opt_out_hint=True)
                except TemplateProblem as problem:
                    add(problem)
    return list(problems.values())
