"""``Idempotency-Key``: a retry gets the first answer and creates nothing twice; the same key with a
different body is refused (409: the key is taken); two identical requests racing create one thing."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

from sqlalchemy import func, insert, select

from dispatcher.access.tokens import Scope, create_token
from dispatcher.store.schema import idempotency_records, incidents, subscribers, updates
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.helpers import incident


def count(api: Api, table: object) -> int:
    with api.rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_retry_with_the_same_key_gets_the_first_answer(api: Api) -> None:
    headers = api.auth(Scope.PUBLISH) | {"Idempotency-Key": "open-checkout-1"}
    body = {"title": "Checkout failing", "severity": "major", "components": ["checkout"]}

    first = api.http.post("/incidents", json=body, headers=headers)
    again = api.http.post("/incidents", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert count(api, incidents) == 1
    # without a key, the same request is a new request
    assert (
        api.http.post(
            "/incidents", json={**body, "title": "Other"}, headers=api.auth(Scope.PUBLISH)
        ).status_code
        == 201
    )
    assert count(api, incidents) == 2


def test_the_same_key_with_another_body_is_a_409_problem_and_changes_nothing(api: Api) -> None:
    headers = api.auth(Scope.SUBSCRIBERS) | {"Idempotency-Key": "k-1"}
    assert api.http.post("/subscribers", json={"email": "a@example.com"}, headers=headers).status_code == 201

    clash = api.http.post("/subscribers", json={"email": "b@example.com"}, headers=headers)

    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/problem+json"
    problem = clash.json()
    assert problem["type"] == "urn:tocsin:problem:idempotency-key-reused"
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert count(api, subscribers) == 1


def test_keys_belong_to_one_token(api: Api) -> None:
    body = {"title": "Checkout failing"}
    one = api.http.post(
        "/incidents", json=body, headers=api.auth(Scope.PUBLISH, name="a") | {"Idempotency-Key": "x"}
    )
    two = api.http.post(
        "/incidents", json=body, headers=api.auth(Scope.PUBLISH, name="b") | {"Idempotency-Key": "x"}
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["incident"]["id"] != two.json()["incident"]["id"]


def test_a_failed_request_stores_nothing_so_the_key_can_be_used_again(api: Api) -> None:
    headers = api.auth(Scope.PUBLISH) | {"Idempotency-Key": "publish-1"}
    body = {
        "status": "investigating",
        "message": "Since 09:12 UTC a third of checkouts fail. We are sorry. We are rolling back the deploy.",
        "next_update_in": "30m",
    }
    missing = api.http.post("/incidents/7/updates", json=body, headers=headers)
    assert missing.status_code == 404
    assert count(api, idempotency_records) == 0

    inc = incident(api.rt)
    first = api.http.post(
        f"/incidents/{inc.id}/updates", json=body, headers=headers | {"Idempotency-Key": "p-2"}
    )
    again = api.http.post(
        f"/incidents/{inc.id}/updates", json=body, headers=headers | {"Idempotency-Key": "p-2"}
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert count(api, updates) == 1


def test_two_identical_requests_racing_create_one_subscriber(api: Api) -> None:
    headers = api.auth(Scope.SUBSCRIBERS) | {"Idempotency-Key": "race"}
    start = threading.Barrier(4)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        start.wait()
        response = api.http.post("/subscribers", json={"email": "race@example.com"}, headers=headers)
        with lock:
            answers.append((response.status_code, response.text))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert count(api, subscribers) == 1
    created = [text for status, text in answers if status == 201]
    assert created and len(set(created)) == 1, answers
    # the others were told to retry (still in progress) or got the first answer: never a second create
    assert {status for status, _ in answers} <= {201, 409}
    assert (
        api.http.post("/subscribers", json={"email": "race@example.com"}, headers=headers).text == created[0]
    )


def _claim(api: Api, token_id: int, key: str, path: str, body: bytes, age: timedelta) -> None:
    with api.rt.engine.begin() as conn:
        conn.execute(
            insert(idempotency_records).values(
                token_id=token_id,
                key=key,
                method="POST",
                path=path,
                request_hash=hashlib.sha256(body).hexdigest(),
                status_code=0,
                body="",
                created_at=api.rt.clock.now() - age,
            )
        )


def test_a_retry_while_the_first_is_running_is_told_to_come_back_and_an_abandoned_claim_is_taken_over(
    api: Api,
) -> None:
    token, secret = create_token(api.rt, "t", [Scope.PUBLISH])
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    body = json.dumps({"title": "Checkout failing"}).encode()
    _claim(api, token.id, "running", "/incidents", body, timedelta(seconds=5))
    _claim(api, token.id, "abandoned", "/incidents", body, timedelta(minutes=10))

    busy = api.http.post("/incidents", content=body, headers=headers | {"Idempotency-Key": "running"})
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert busy.json()["type"] == "urn:tocsin:problem:request-in-progress"
    assert count(api, incidents) == 0

    taken = api.http.post("/incidents", content=body, headers=headers | {"Idempotency-Key": "abandoned"})
    assert taken.status_code == 201 and count(api, incidents) == 1
    replay = api.http.post("/incidents", content=body, headers=headers | {"Idempotency-Key": "abandoned"})
    assert replay.content == taken.content and count(api, incidents) == 1
