"""Say in ``/openapi.json`` what the request guard enforces on every string: no control characters.

The guard (``dispatcher.web.request_guard``) refuses NUL and the other control characters (tab and line
breaks are fine) in any JSON value or key, form field, query parameter or CSV cell, with a 422 naming
the field. A description that allows them would call valid what the server refuses; so every string
the document describes without a pattern of its own gets this one, and every map its keys.
"""

from __future__ import annotations

from typing import Any

from dispatcher.domain.text_safety import ALLOWED_CONTROLS

PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
"""Any text without the control characters ``dispatcher.domain.text_safety`` refuses."""
_OPEN_FORMATS = {None, "email", "uri", "password"}
"""Formats that still allow arbitrary characters (a ``date-time`` or ``binary`` does not need one)."""

_COMPONENT = "#/components/schemas/"

assert ALLOWED_CONTROLS == "\t\n\r", "PLAIN_TEXT spares exactly tab, LF and CR"


def declare_plain_text(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add ``PLAIN_TEXT`` to every string a request carries (parameters, bodies and the schemas they
    refer to) that has no pattern, enum or closed format of its own. Responses are left alone: a
    problem may quote the bad key it refuses."""
    schemas = openapi.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                _walk(operation.get("parameters", []), schemas, seen)
                _walk(operation.get("requestBody", {}), schemas, seen)
    return openapi


def _walk(node: object, schemas: dict[str, Any], seen: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, schemas, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_COMPONENT) and ref not in seen:
        seen.add(ref)
        _walk(schemas.get(ref.removeprefix(_COMPONENT)), schemas, seen)
    if _is_open_string(node):
        node["pattern"] = PLAIN_TEXT
    if isinstance(node.get("additionalProperties"), dict) and "propertyNames" not in node:
        node["propertyNames"] = {"pattern": PLAIN_TEXT}
    for value in node.values():
        _walk(value, schemas, seen)


def _is_open_string(node: dict[str, Any]) -> bool:
    return (
        node.get("type") == "string"
        and "pattern" not in node
        and "enum" not in node
        and "const" not in node
        and node.get("format") in _OPEN_FORMATS
    )
