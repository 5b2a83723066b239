"""Approval that holds: who wrote an update and who approves it are identities proven by tokens (the
CLI's personal token, the API's bearer token, the console's session), compared by token, never by
typed text. Each case here approved someone's own update before (issue 15)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from dispatcher.access.tokens import Scope
from dispatcher.domain.models import Severity
from dispatcher.store.schema import updates
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.cli import Ran, tocsin
from tests.helpers import incident, states, subscribe

TEXT = "Card payments fail for some customers. We are sorry."


def _token(name: str, cwd: Path) -> str:
    made = tocsin("tokens", "create", name, "--scope", "publish", cwd=cwd)
    assert made.code == 0, made.err
    return made.out.splitlines()[0].strip()


def _publish(cwd: Path, env: dict[str, str] | None = None) -> Ran:
    return tocsin(
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        TEXT,
        "--next-update-in",
        "30m",
        cwd=cwd,
        env=env,
    )


def test_the_cli_approver_is_who_the_personal_token_says(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nCustomer,customer@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Payments failing", "--severity", "critical", cwd=tmp_path).code == 0
    alice, bob = _token("alice@acmepay.example", tmp_path), _token("bob", tmp_path)

    untokened = _publish(tmp_path, {"TOCSIN_USER": "alice@acmepay.example"})
    assert untokened.code == 1 and "needs your personal token" in untokened.err
    written = _publish(tmp_path, {"TOCSIN_TOKEN": alice})
    assert (
        written.code == 0 and "waits for approval by someone other than alice@acmepay.example" in written.out
    )

    typed = tocsin("approve", "1", "--as", "alice@acmepay.example", cwd=tmp_path)
    assert typed.code == 1 and "needs your personal token" in typed.err and "Traceback" not in typed.err
    pretending = tocsin("approve", "1", "--as", "bob", cwd=tmp_path, env={"TOCSIN_TOKEN": alice})
    assert pretending.code == 1 and "your token says you are alice@acmepay.example" in pretending.err
    own = tocsin("approve", "1", "--token", alice, cwd=tmp_path)
    assert own.code == 1 and "someone else must approve it" in own.err
    assert not list(tmp_path.glob("outbox/update-1/**/*.eml")), "nothing sent"

    approved = tocsin("approve", "1", cwd=tmp_path, env={"TOCSIN_TOKEN": bob})
    assert approved.code == 0, approved.err
    assert "approved by bob" in approved.out
    assert len(list(tmp_path.glob("outbox/update-1/email/*.eml"))) == 1


def test_an_api_token_cannot_approve_its_own_update_by_naming_someone_else(api: Api) -> None:
    subscribe(api.rt, 2)
    inc = incident(api.rt, Severity.CRITICAL)
    alice = api.auth(Scope.PUBLISH, name="alice")
    written = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={"status": "investigating", "message": TEXT, "next_update_in": "30m"},
        headers=alice,
    )
    uid = written.json()["update"]["id"]
    assert written.json()["update"]["state"] == "pending_approval"

    claimed = api.http.post(f"/updates/{uid}/approve", json={"approver": "bob"}, headers=alice)
    api.deliver()

    assert claimed.status_code == 422, claimed.text
    assert (
        claimed.json()["errors"] == [{"field": "approver", "message": claimed.json()["errors"][0]["message"]}]
        and "not accepted" in claimed.json()["errors"][0]["message"]
    )
    assert states(api.rt, uid) == {}, "nothing sent"
    again = api.http.post(f"/updates/{uid}/approve", headers=api.auth(Scope.PUBLISH, name="alice"))
    assert again.status_code == 409 and "someone else must approve" in again.json()["detail"]
    rejected_as = api.http.post(
        f"/updates/{uid}/reject", json={"reason": "x", "rejected_by": "bob"}, headers=alice
    )
    assert rejected_as.status_code == 422


def test_the_author_is_the_api_tokens_identity_never_a_body_field(api: Api) -> None:
    inc = incident(api.rt, Severity.MAJOR)
    posing = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={"status": "investigating", "message": TEXT, "next_update_in": "30m", "author": "the-ceo"},
        headers=api.auth(Scope.PUBLISH, name="alice"),
    )
    assert posing.status_code == 422 and posing.json()["errors"][0]["field"] == "author"
    with api.rt.engine.connect() as conn:
        assert conn.execute(select(updates.c.id)).first() is None, "nothing written"
    ok = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={"status": "investigating", "message": TEXT, "next_update_in": "30m"},
        headers=api.auth(Scope.PUBLISH, name="alice"),
    )
    assert ok.status_code == 201 and ok.json()["update"]["author"] == "api:alice"
    assert ok.json()["update"]["author_token_id"] is not None
