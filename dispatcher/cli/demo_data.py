"""Sample subscribers for ``tocsin demo``: fictional people on reserved names and numbers."""

from __future__ import annotations

from channels.base import ChannelKind
from dispatcher.domain.models import ContactPoint, Subscriber

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Radia", "Donald"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds"]
COMPONENTS = [["api"], ["checkout"], [], ["api", "dashboard"], []]


def sample_subscribers(count: int = 60) -> list[Subscriber]:
    """``count`` subscribers, each with email, an E.164 phone in the fictional 555-01xx range and a
    webhook endpoint; every tenth is staff (internal), every seventh reads French."""
    people = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        people.append(
            Subscriber(
                external_id=f"demo-{i + 1}",
                name=f"{first} {last}",
                locale="fr" if i % 7 == 6 else "en",
                components=COMPONENTS[i % len(COMPONENTS)],
                internal=i % 10 == 0,
                contact_points=[
                    ContactPoint(
                        channel=ChannelKind.EMAIL,
                        address=f"{first.lower()}.{last.lower()}{i + 1}@example.com",
                    ),
                    ContactPoint(channel=ChannelKind.SMS, address=f"+1202555{100 + i:04d}"),
                    ContactPoint(
                        channel=ChannelKind.WEBHOOK, address=f"https://hooks.example.com/tocsin/{i + 1}"
                    ),
                ],
            )
        )
    return people
