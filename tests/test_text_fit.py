"""Short messages fit their budget by losing words of the body only: the status, the promise, the link
and the opt-out hint stay; the layout's extras go first."""

from __future__ import annotations

from channels.text.fit import BODY_END, BODY_START, EXTRA_END, EXTRA_START, fit, sms_budget, x_budget
from channels.text.sms_segments import count_segments, gsm_friendly
from channels.text.x_text import weighted_length

HEAD = "Acme: MAJOR - Investigating: Checkout failing."
TAIL = "Next update by 4:30 AM UTC. https://status.acme.example Reply STOP to opt out."
BODY = "Card payments fail for about a third of customers; we rolled back the deploy. " * 6


def marked(body: str, extra: str = "") -> str:
    extras = f" {EXTRA_START}{extra}{EXTRA_END}" if extra else ""
    return f"{HEAD} {BODY_START}{body}{extras}{BODY_END} {TAIL}"


def test_a_text_that_fits_is_left_alone_without_its_marks() -> None:
    fitted = fit(marked("Card payments fail.", "Affected: checkout."), sms_budget(2))
    assert fitted.text == f"{HEAD} Card payments fail. Affected: checkout. {TAIL}"
    assert not fitted.shortened


def test_the_body_is_cut_at_a_word_and_the_head_and_tail_stay() -> None:
    fitted = fit(marked(BODY), sms_budget(2))
    assert fitted.shortened and not fitted.over_budget
    assert count_segments(fitted.text).segments == 2
    assert fitted.text.startswith(HEAD + " Card payments fail")
    assert fitted.text.endswith("... " + TAIL)
    kept = fitted.text[len(HEAD) + 1 :].split("... " + TAIL)[0]
    assert BODY.startswith(kept) and BODY[len(kept)] in " ;", "cut between two words"


def test_extras_are_left_out_before_any_word_of_the_author() -> None:
    body = "Card payments fail, sorry."
    with_extra = marked(body, "Affected: checkout, payments, invoicing, the merchant dashboard.")
    fitted = fit(with_extra, sms_budget(1))
    assert fitted.text == f"{HEAD} {body} {TAIL}"
    assert not fitted.shortened, "the author's words are all there"


def test_an_x_post_keeps_promise_and_link() -> None:
    tail = "Next update by 4:30 AM CET (3:30 AM UTC). https://status.acme.example"
    fitted = fit(f"[Major] Investigating: Checkout failing. {BODY_START}{BODY}{BODY_END} {tail}", x_budget())
    assert weighted_length(fitted.text) <= 280
    assert fitted.text.endswith("… " + tail) and fitted.shortened


def test_with_no_room_for_the_body_the_title_is_cut_and_never_the_tail() -> None:
    tight = fit(marked(BODY), sms_budget(1))
    assert count_segments(tight.text).segments == 1
    assert tight.text.endswith(TAIL) and tight.text.startswith("Acme: MAJOR")


def test_too_long_even_without_body_is_flagged() -> None:
    huge_tail = "Next update by 4:30 AM UTC. " + "https://status.acme.example/" + "x" * 400
    fitted = fit(f"{HEAD} {BODY_START}{BODY}{BODY_END} {huge_tail}", sms_budget(1))
    assert fitted.over_budget and huge_tail in fitted.text


def test_a_text_without_marks_is_cut_from_its_end_as_before() -> None:
    fitted = fit(HEAD + " " + BODY, sms_budget(1), "https://status.acme.example")
    assert fitted.shortened and fitted.text.endswith("... https://status.acme.example")


def test_typographic_characters_become_gsm_look_alikes() -> None:
    text = "We\u2019re on it \u2013 \u201cpayments\u201d fail\u2026 Répondez STOP\u202fmerci"
    assert gsm_friendly(text) == "We're on it - \"payments\" fail... Répondez STOP merci"
    assert count_segments(gsm_friendly(text)).encoding == "GSM-7"
