"""Subscribers: search, and CSV import with every bad row shown."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.responses import Response

from dispatcher.audience.importing import import_subscribers_file
from dispatcher.domain.errors import TocsinError
from dispatcher.web.console import queries
from dispatcher.web.console.access import (
    ConsoleRoute,
    Reader,
    Writer,
)
from dispatcher.web.console.identity import Scope
from dispatcher.web.console.pages import common_context
from dispatcher.web.console.views import page

router = APIRouter(route_class=ConsoleRoute)


@router.get("/subscribers")
def subscribers_page(who: Reader, q: str = "") -> Response:
    return page(
        "subscribers.html",
        **common_context(who, q=q, found=queries.search_subscribers(who.rt, q), outcome=None),
    )


@router.post("/subscribers/import")
def import_action(
    who: Writer,
    file: Annotated[UploadFile | None, File()] = None,
    skip_invalid: Annotated[bool, Form()] = False,
    region: Annotated[str, Form()] = "",
) -> Response:
    who.require(Scope.SUBSCRIBERS)
    rt = who.rt
    outcome, error = None, None
    if file is None or not file.filename:
        error = "choose a CSV file to import"
    else:
        with tempfile.TemporaryDirectory(prefix="tocsin-import-") as folder:
            path = Path(folder) / "subscribers.csv"
            path.write_bytes(file.file.read())
            try:
                outcome = import_subscribers_file(
                    rt, path, region.strip() or rt.settings.default_region, skip_invalid
                )
            except TocsinError as exc:
                error = str(exc)
    status = 400 if error or (outcome and outcome.problems and not skip_invalid) else 200
    return page(
        "subscribers.html",
        status_code=status,
        **common_context(
            who,
            q="",
            found=queries.search_subscribers(rt),
            outcome=outcome,
            filename=file.filename if file else "",
            skip_invalid=skip_invalid,
            error=error,
        ),
    )
