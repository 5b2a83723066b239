"""SVG status badges (``badge.svg`` for the page, ``badges/<slug>.svg`` per component), drawn in the
flat style people know from README badges: a grey label, a coloured state. Readable without colour:
the state is written out, and ``<title>`` plus ``aria-label`` give screen readers the same text."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

COLOURS = {
    "none": "#1a7f37",
    "operational": "#1a7f37",
    "maintenance": "#0969da",
    "under_maintenance": "#0969da",
    "minor": "#9a6700",
    "degraded_performance": "#9a6700",
    "major": "#bc4c00",
    "partial_outage": "#bc4c00",
    "critical": "#cf222e",
    "major_outage": "#cf222e",
}
_NARROW = set("fijlrt!.,:;'|()[] ")
_WIDE = set("mwMW@%")


def text_width(text: str) -> int:
    """Roughly how wide ``text`` is in 11px Verdana (the badge font), in pixels."""
    width = 0.0
    for ch in text:
        width += 3.5 if ch in _NARROW else 10.0 if ch in _WIDE else 8.0 if ch.isupper() else 7.0
    return int(width + 0.5)


def badge(label: str, message: str, state: str) -> bytes:
    """A flat two-part badge: ``label`` on grey, ``message`` on the colour of ``state``."""
    colour = COLOURS.get(state, "#57606a")
    left, right = text_width(label) + 12, text_width(message) + 12
    total = left + right
    spoken = f"{label}: {message}"
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f"aria-label={quoteattr(spoken)}>"
        f"<title>{escape(spoken)}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,Geneva,sans-serif" '
        'font-size="11">'
        f'<text x="{left / 2:.1f}" y="14">{escape(label)}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{escape(message)}</text>'
        "</g></svg>\n"
    )
    return svg.encode("utf-8")
