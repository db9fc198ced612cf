"""Notifications over HTTP, on SQLite and PostgreSQL: own mailbox only, bad input is 4xx.

Mail arrives the only way it does in production: as events on the bus.
"""

import uuid
from typing import Any

import httpx
import pytest

from chassis import encode_cursor

pytestmark = pytest.mark.slow

MAILBOX = "/api/v1/notifications"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_each_user_sees_only_their_own_mail(service: Any, events: Any, callers: Any) -> None:
    await service.publish(
        events.registered("user-a", name="Ada"),
        events.order("confirmed", "user-a", amount=1290),
        events.registered("user-b", name="Bob"),
    )
    await service.until_total(3)

    a = (await service.client.get(MAILBOX, headers=callers.user("user-a"))).json()
    b = (await service.client.get(MAILBOX, headers=callers.user("user-b"))).json()
    assert [n["kind"] for n in a["items"]] == ["order_confirmed", "welcome"]  # newest first
    assert a["next_cursor"] is None
    assert {n["user_id"] for n in a["items"]} == {"user-a"}
    assert [n["title"] for n in b["items"]] == ["Welcome to Mercato, Bob"]
    confirmed = a["items"][0]
    assert "€12.90" in confirmed["body"]
    assert confirmed["cause"]["message_type"] == "orders.order.confirmed.v1"
    assert confirmed["created_at"].endswith("Z")
    assert confirmed["read_at"] is None

    # B cannot read or mark A's notification; it does not even exist for B.
    a_id = confirmed["id"]
    body = problem(
        await service.client.post(f"{MAILBOX}/{a_id}/read", headers=callers.user("user-b")), 404
    )
    assert body["type"] == "/problems/notification-not-found"
    problem(await service.client.get(f"{MAILBOX}/{a_id}", headers=callers.user("user-b")), 404)
    # ... and an admin is no exception: a mailbox is its owner's alone
    problem(await service.client.get(f"{MAILBOX}/{a_id}", headers=callers.admin()), 404)
    own = await service.client.get(f"{MAILBOX}/{a_id}", headers=callers.user("user-a"))
    assert own.json() == confirmed


async def test_reading_marks_once_and_filters(service: Any, events: Any, callers: Any) -> None:
    await service.publish(
        events.registered("u"), events.order("confirmed", "u"), events.order("cancelled", "u")
    )
    await service.until_total(3)
    me = callers.user("u")
    newest = (await service.client.get(MAILBOX, headers=me)).json()["items"][0]
    assert (await service.client.get(f"{MAILBOX}/unread-count", headers=me)).json() == {"unread": 3}

    marked = await service.client.post(f"{MAILBOX}/{newest['id']}/read", headers=me)
    assert marked.status_code == 200, marked.text
    read_at = marked.json()["read_at"]
    assert read_at is not None
    again = await service.client.post(f"{MAILBOX}/{newest['id']}/read", headers=me)
    assert again.json()["read_at"] == read_at

    unread = (await service.client.get(MAILBOX, params={"unread": "true"}, headers=me)).json()
    read = (await service.client.get(MAILBOX, params={"unread": "false"}, headers=me)).json()
    assert newest["id"] not in {n["id"] for n in unread["items"]}
    assert len(unread["items"]) == 2
    assert [n["id"] for n in read["items"]] == [newest["id"]]
    assert (await service.client.get(f"{MAILBOX}/unread-count", headers=me)).json() == {"unread": 2}


async def test_cursor_pagination_walks_the_whole_mailbox(
    service: Any, events: Any, callers: Any
) -> None:
    await service.publish(*(events.order("confirmed", "u", amount=n) for n in range(1, 8)))
    await service.publish(events.order("confirmed", "someone-else"))
    await service.until_total(8)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await service.client.get(MAILBOX, params=params, headers=callers.user("u"))).json()
        seen += [n["body"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    # published in order, delivered in order, listed newest first
    assert [s.split("Total: ")[1].split(".\n")[0] for s in seen] == [
        f"€0.0{n}" for n in range(7, 0, -1)
    ]


async def test_the_news_feed_is_public(service: Any, events: Any) -> None:
    product = str(uuid.uuid4())
    await service.publish(
        events.product_created(product, name="Stoneware Mug", amount=1490),
        events.price_changed(product, old=1490, new=1290),
    )

    async def both() -> bool:
        return len(await service.news()) == 2

    await service.until(both, "two news items")
    items = await service.news()
    assert [i["headline"] for i in items] == [
        "Price drop: Stoneware Mug, now €12.90 (was €14.90)",
        "New: Stoneware Mug, €14.90",
    ]
    assert items[0]["price"] == {"amount": 1290, "currency": "EUR"}
    assert items[0]["old_price"] == {"amount": 1490, "currency": "EUR"}
    assert items[1]["category"] == "kitchen"
    first = (await service.client.get("/api/v1/notifications/news", params={"limit": 1})).json()
    assert len(first["items"]) == 1
    rest = await service.client.get(
        "/api/v1/notifications/news", params={"cursor": first["next_cursor"]}
    )
    assert [i["kind"] for i in rest.json()["items"]] == ["product_created"]
    assert await service.total() == 0  # no user's mailbox got catalog news


async def test_the_audit_count_is_for_admins(service: Any, events: Any, callers: Any) -> None:
    await service.publish(
        events.registered("u1"),
        events.registered("u2"),
        events.order("rejected", "u1", reason="out_of_stock"),
    )
    await service.until_total(3)
    url = "/internal/audit/notifications/count"
    counted = await service.client.get(url, headers=callers.admin())
    assert counted.json() == {"total": 3, "by_kind": {"welcome": 2, "order_rejected": 1}}
    problem(await service.client.get(url), 401)
    problem(await service.client.get(url, headers=callers.user("u1")), 403)


async def test_anonymous_callers_have_no_mailbox(service: Any) -> None:
    problem(await service.client.get(MAILBOX), 401)
    problem(await service.client.get(f"{MAILBOX}/unread-count"), 401)
    problem(await service.client.post(f"{MAILBOX}/{uuid.uuid4()}/read"), 401)
    problem(await service.client.get(MAILBOX, headers={"x-mercato-principal": "forged.token"}), 401)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=1000000",
        "limit=ten",
        "unread=maybe",
        "cursor=!!!not-a-cursor!!!",
        "cursor=WzEsMiwzXQ",  # valid base64 JSON, wrong shape
        "cursor=WzEsMl0",  # [1, 2]: right length, wrong types
        "cursor=" + encode_cursor(["yesterday", "x"]),
        "cursor=" + encode_cursor(["2026-01-01T00:00:00", "x"]),  # naive time
        "cursor=" + encode_cursor(["2026-01-01T00:00:00+00:00", "nul\x00id"]),
        "cursor=" + encode_cursor(["2026-01-01T00:00:00+00:00", "x" * 100]),
        "cursor=" + "A" * 600,
        "cursor=%ED%A0%80",
    ],
)
async def test_bad_query_parameters_are_4xx(service: Any, callers: Any, query: str) -> None:
    paths = [MAILBOX] if query.startswith("unread") else [MAILBOX, f"{MAILBOX}/news"]
    for path in paths:
        response = await service.client.get(f"{path}?{query}", headers=callers.user("u"))
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "notification_id",
    [
        "does-not-exist",
        str(uuid.uuid4()),
        "%00",
        "nul%00byte",
        "%ED%A0%80",
        "%FF",
        "' OR 1=1 --",
        "x" * 150,
        "x" * 5000,
        "..%2F..%2Fetc",
        "🙂",
    ],
)
async def test_unknown_or_odd_ids_are_4xx(service: Any, callers: Any, notification_id: str) -> None:
    for method, suffix in (("GET", ""), ("POST", "/read")):
        response = await service.client.request(
            method, f"{MAILBOX}/{notification_id}{suffix}", headers=callers.user("u")
        )
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_body_is_ignored_and_wrong_methods_are_405(service: Any, callers: Any) -> None:
    problem(await service.client.delete(MAILBOX, headers=callers.user("u")), 405)
    problem(await service.client.put(f"{MAILBOX}/news", headers=callers.user("u")), 405)
    response = await service.client.post(
        f"{MAILBOX}/{uuid.uuid4()}/read",
        content=b"\xff\xfe garbage",
        headers={**callers.user("u"), "content-type": "application/json"},
    )
    problem(response, 404)


async def test_ready_when_database_and_broker_are(service: Any) -> None:
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
