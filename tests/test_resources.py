"""Packaged files are found by package, and a missing one is a loud, named error."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config import resources
from dispatcher.domain.errors import ConfigurationError


def test_the_templates_and_migrations_are_found_by_package() -> None:
    assert (resources.templates_root() / "email" / "body.txt.j2").is_file()
    assert (resources.migrations_root() / "env.py").is_file()
    assert list((resources.migrations_root() / "versions").glob("0001_*.py"))


def test_a_missing_packaged_folder_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(resources, "MIGRATIONS_FOLDER", "no-such-folder")
    with pytest.raises(ConfigurationError, match="database migrations are missing"):
        resources.migrations_root()
