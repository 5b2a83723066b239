"""Examples shown to users (help texts, the API schema, the docs) are values Tocsin itself accepts."""

from __future__ import annotations

import re
from pathlib import Path

import phonenumbers

ROOT = Path(__file__).resolve().parent.parent
SHOWN = [*(ROOT / "dispatcher").rglob("*.py"), ROOT / "README.md", *(ROOT / "docs" / "pages").glob("*.md")]


def test_every_example_phone_number_is_a_valid_number() -> None:
    found = {
        number: path.relative_to(ROOT)
        for path in SHOWN
        for number in re.findall(r"\+\d{10,15}\b", path.read_text(encoding="utf-8"))
    }
    assert found, "examples were found"
    invalid = {n: str(p) for n, p in found.items() if not phonenumbers.is_valid_number(phonenumbers.parse(n))}
    assert not invalid, f"example phone numbers Tocsin would refuse: {invalid}"
