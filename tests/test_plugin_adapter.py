"""A provider added from outside, as the channels page shows: installed as a package with a
``tocsin.channels`` entry point, chosen in the configuration, carrying an update without any change to
Tocsin."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from channels import registry
from channels.base import ChannelKind
from dispatcher.config.settings import ChannelSettings
from dispatcher.engine.runtime import Runtime
from tests.emulators import WebhookReceiver
from tests.helpers import draft, incident, publish_and_deliver, states

README = Path(__file__).resolve().parent.parent / "docs" / "pages" / "channels.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- example-adapter -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "the channels page shows an example adapter"
    return match.group(1)


@pytest.fixture
def ntfy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install the README's adapter as a distribution would: a module plus entry-point metadata."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "tocsin_ntfy.py").write_text(readme_example())
    dist = site / "tocsin_ntfy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tocsin-ntfy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tocsin.channels]\nntfy = tocsin_ntfy:NtfyAdapter\n")
    monkeypatch.syspath_prepend(str(site))
    registry.available.cache_clear()
    registry.adapter_class.cache_clear()
    yield
    registry.available.cache_clear()
    registry.adapter_class.cache_clear()
    sys.modules.pop("tocsin_ntfy", None)


def test_the_readme_adapter_plugs_in_by_entry_point(
    ntfy_plugin: None, make_runtime: Callable[..., Runtime]
) -> None:
    assert "ntfy" in registry.available()
    assert len(readme_example().splitlines()) <= 45
    with WebhookReceiver(verify=False) as ntfy:
        rt = make_runtime(
            channels={ChannelKind.CHAT: ChannelSettings(providers=["ntfy"])},
            providers={"ntfy": {"topic": "acme-status", "base_url": ntfy.base_url}},
        )
        published = publish_and_deliver(
            rt, draft(incident(rt), "Checkout is failing.", channels=[ChannelKind.CHAT])
        )

        assert states(rt, published.update.id) == {"sent": 1}
        assert [m["path"] for m in ntfy.received] == ["/acme-status"]
        assert "Checkout is failing." in str(ntfy.received[0]["body"])
