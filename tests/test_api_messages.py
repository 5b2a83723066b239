"""Through the HTTP API: texts per language and channel, message templates, drafts."""

from __future__ import annotations

from pathlib import Path

from dispatcher.access.tokens import Scope
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.domain.models import Severity
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.helpers import incident, person

EN = "Card payments fail for some customers. We are sorry."
FR = "Les paiements par carte échouent pour certains clients. Nous sommes désolés."


def test_an_update_carries_a_field_per_locale_and_the_preview_shows_each(api: Api, tmp_path: Path) -> None:
    add_subscribers(api.rt, [person(1), person(2, locale="fr")])
    inc = incident(api.rt, Severity.MAJOR)
    body = {
        "status": "investigating",
        "message": EN,
        "next_update_in": "30m",
        "texts": {
            "fr": {"message": FR, "sms": "Paiements en échec. Désolés."},
            "en": {"sms": "Payments fail."},
        },
    }
    preview = api.http.post(f"/incidents/{inc.id}/preview", json=body, headers=api.auth(Scope.PUBLISH))
    assert preview.status_code == 200, preview.text
    (french,) = [loc for loc in preview.json()["locales"] if loc["locale"] == "fr"]
    assert not french["fallback"]
    assert FR in next(c["text"] for c in french["channels"] if c["channel"] == "email")
    assert "locale-missing" not in {f["rule"] for f in preview.json()["findings"]}

    published = api.http.post(f"/incidents/{inc.id}/updates", json=body, headers=api.auth(Scope.PUBLISH))
    assert published.status_code == 201, published.text
    update = published.json()["update"]
    assert update["texts"]["fr"] == {"message": FR, "sms": "Paiements en échec. Désolés."}
    api.deliver()
    outbox = tmp_path / "outbox" / f"update-{update['id']}" / "email"
    bodies = [p.read_bytes() for p in outbox.glob("*.eml")]
    assert len(bodies) == 2 and any(b"Les paiements par carte" in b.replace(b"=\r\n", b"") for b in bodies)


def test_a_missing_language_is_a_warning_and_bad_texts_are_named(api: Api) -> None:
    add_subscribers(api.rt, [person(2, locale="fr")])
    inc = incident(api.rt, Severity.CRITICAL)
    english_only = {"status": "investigating", "message": EN, "next_update_in": "30m"}
    token = api.auth(Scope.PUBLISH)
    preview = api.http.post(f"/incidents/{inc.id}/preview", json=english_only, headers=token)
    (warning,) = [f for f in preview.json()["findings"] if f["rule"] == "locale-missing"]
    assert warning["level"] == "warn" and "no text in fr" in warning["message"]
    assert preview.json()["locales"][0]["fallback"] is True

    bad = {**english_only, "texts": {"fr": {"sms": "Paiements en échec."}}}
    refused = api.http.post(f"/incidents/{inc.id}/updates", json=bad, headers=api.auth(Scope.PUBLISH))
    # Which locale is the default is configuration, not the description: a 409 naming the field.
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "texts.fr.message"


def test_templates_are_listed_filled_and_published(api: Api) -> None:
    inc = incident(api.rt, Severity.MAJOR, ["Payments"])
    listed = api.http.get("/templates", headers=api.auth(Scope.READ))
    assert listed.status_code == 200
    names = {t["name"] for t in listed.json()}
    assert {"first-notice", "degraded", "security-first-notice"} <= names
    one = api.http.get("/templates/degraded", headers=api.auth(Scope.READ)).json()
    assert one["variables"]["workaround"]["required"] is False and set(one["texts"]) == {"en", "fr"}
    assert api.http.get("/templates/nope", headers=api.auth(Scope.READ)).status_code == 404

    filled = api.http.post(
        "/templates/degraded/fill",
        json={"incident_id": inc.id, "vars": {"workaround": "Retry in a minute."}},
        headers=api.auth(Scope.PUBLISH),
    )
    assert filled.status_code == 200, filled.text
    assert "Payments" in filled.json()["message"] and "Retry in a minute." in filled.json()["message"]

    published = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={"template": "degraded", "vars": {"workaround": "Retry in a minute."}},
        headers=api.auth(Scope.PUBLISH),
    )
    assert published.status_code == 201, published.text
    update = published.json()["update"]
    assert update["template"] == "degraded" and update["status"] == "investigating"
    assert update["next_update_at"] is not None and set(update["texts"]) == {"en", "fr"}

    missing = api.http.post(
        f"/incidents/{inc.id}/updates", json={"template": "third-party"}, headers=api.auth(Scope.PUBLISH)
    )
    # What a template needs is the template's, not the description's: a 409 naming the value.
    assert missing.status_code == 409 and missing.json()["errors"][0]["field"] == "vars.provider"


def test_a_draft_is_saved_edited_and_published_by_someone_else(api: Api) -> None:
    inc = incident(api.rt, Severity.MAJOR)
    alice, bob = api.auth(Scope.PUBLISH, Scope.READ, name="alice"), api.auth(Scope.PUBLISH, name="bob")
    saved = api.http.post(
        f"/incidents/{inc.id}/drafts",
        json={
            "status": "investigating",
            "message": EN,
            "next_update_in": "30m",
            "texts": {"fr": {"message": FR}},
        },
        headers=alice,
    )
    assert saved.status_code == 201, saved.text
    draft = saved.json()
    assert (draft["state"], draft["version"], draft["author"]) == ("open", 1, "api:alice")

    edited = api.http.patch(
        f"/drafts/{draft['id']}", json={"message": EN + " Retry in a minute.", "version": 1}, headers=alice
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = api.http.patch(f"/drafts/{draft['id']}", json={"message": "x", "version": 1}, headers=bob)
    assert stale.status_code == 409 and "changed since version 1" in stale.json()["detail"]
    listed = api.http.get(f"/drafts?incident_id={inc.id}", headers=alice).json()
    assert [d["id"] for d in listed] == [draft["id"]]

    sent = api.http.post(f"/drafts/{draft['id']}/publish", json={"version": 2}, headers=bob)
    assert sent.status_code == 201, sent.text
    update = sent.json()["update"]
    assert update["author"] == "api:bob" and update["message"].endswith("Retry in a minute.")
    assert update["texts"] == {"fr": {"message": FR}}
    again = api.http.post(f"/drafts/{draft['id']}/publish", headers=bob)
    assert again.status_code == 409
    assert f"already published as update {update['id']}" in again.json()["detail"]
    shown = api.http.get(f"/drafts/{draft['id']}", headers=alice).json()
    assert (shown["state"], shown["published_update_id"], shown["published_by"]) == (
        "published",
        update["id"],
        "api:bob",
    )
    assert api.http.get(f"/drafts?incident_id={inc.id}", headers=alice).json() == []
    gone = api.http.delete(f"/drafts/{draft['id']}", headers=bob)
    assert gone.status_code == 409
