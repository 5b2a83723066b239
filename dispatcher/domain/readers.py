"""Who reads a copy of an update: the variant of its rendering a delivery row asks for.

Every recipient whose copy reads the same shares one rendering (and one provider call per batch). What
makes copies differ is written into the delivery row's ``locale`` column as a short key:

    fr                       a French reader in the organisation's time zone
    fr+staff                 staff's copy (carries the internal note)
    en@America/New_York      an English reader in New York
    en@America/Chicago!stop  ... whose SMS must end with the opt-out hint (a North American number)

The fan-out writes the key; the deliverer renders each distinct key once.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.domain.audiences import STAFF_MARK

ZONE_MARK = "@"
STOP_MARK = "!stop"

OPT_OUT_HINT_PREFIXES = ("+1",)
"""Numbers whose carriers expect every SMS to say how to stop (the US and Canada, CTIA rules, and the
rest of the North American numbering plan): E.164 prefixes."""


def needs_opt_out_hint(phone: str) -> bool:
    """Whether an SMS to ``phone`` (E.164) ends with "Reply STOP to opt out" in the reader's language."""
    return phone.startswith(OPT_OUT_HINT_PREFIXES)


@dataclass(frozen=True)
class ReaderVariant:
    locale: str
    staff: bool = False
    zone: str | None = None
    """The reader's IANA time zone; None: the organisation's."""
    opt_out_hint: bool = False

    @property
    def key(self) -> str:
        """The text stored in ``deliveries.locale`` (at most 20 + 6 + 61 + 5 characters)."""
        key = self.locale + (STAFF_MARK if self.staff else "")
        if self.zone:
            key += ZONE_MARK + self.zone
        return key + (STOP_MARK if self.opt_out_hint else "")

    @classmethod
    def parse(cls, key: str) -> ReaderVariant:
        """The variant a row's ``locale`` column names (older rows hold a bare locale, or ``fr+staff``)."""
        hint = key.endswith(STOP_MARK)
        if hint:
            key = key[: -len(STOP_MARK)]
        key, _, zone = key.partition(ZONE_MARK)
        staff = key.endswith(STAFF_MARK)
        if staff:
            key = key[: -len(STAFF_MARK)]
        return cls(locale=key, staff=staff, zone=zone or None, opt_out_hint=hint)
