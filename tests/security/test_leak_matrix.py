"""The cross-user leak matrix (issue 8).

Two traders with overlapping tickets and symbols (``tests/security/conftest.py``). For EVERY API
operation in the URL conf, Bob is tried with Alice's ids (detail URLs), Alice's tickets and symbols
in filters, cursors taken from Alice's pages, bodies naming Alice, and Alice's cached responses
within the TTL (same URL with Bob's token; and the browsable API with Bob's session and
``Accept: text/html``). Every attempt must return only Bob's data, or 404 — never 403, never one of
Alice's values (``markers_in``), never an id of one of Alice's rows.

A new API operation fails ``test_every_api_operation_has_a_leak_case`` until a case is added here.
Runs on both backends; CI's second run puts the cache attempts on Redis (and
``test_cache_attempts_on_redis`` proves that run used Redis).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import Account
from guards.models import DrawdownAlert, GuardConfig, InstrumentGuardSetting, LossRule, MarketAlert
from positions.models import Deal, Position
from reconciliation.models import ReconciliationLog
from tests.security.conftest import ACCOUNT, Trader, clear_caches, markers_in
from tests.security.endpoints import api_operations
from tradingsite import sync_payload as mt5

pytestmark = pytest.mark.django_db

# Fields that change with the clock between two reads of the same data.
VOLATILE_KEYS = {"as_of", "evaluated_at", "sync_age_seconds"}


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------
class Attempts:
    """Collects the problems of a series of attempts; the test asserts the list is empty."""

    def __init__(self, alice: Trader, bob: Trader) -> None:
        self.alice, self.bob = alice, bob
        self.problems: list[str] = []
        self.count = 0

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def bob_only(self, where: str, response, *, ids: Callable[[Any], set[int]] | None = None, owned=None) -> Any:
        """Bob's answer must be a 2xx carrying none of Alice's values and (``ids``) only ids of ``owned``."""
        self.count += 1
        if response.status_code >= 300:
            self.fail(where, f"status {response.status_code} {response.content[:200]!r}")
            return None
        text = response.content.decode()
        leaked = markers_in(text, self.alice.markers)
        if leaked:
            self.fail(where, f"Alice's values {leaked} in Bob's answer")
        if not response["Content-Type"].startswith("application/json"):
            return text
        body = response.json()
        if ids is not None:
            foreign = ids(body) - owned
            if foreign:
                self.fail(where, f"ids {sorted(foreign)} are not Bob's")
        return body

    def not_found(self, where: str, response) -> None:
        """Another user's object: 404 with a JSON body, never 403, never the object."""
        self.count += 1
        if response.status_code != 404:
            self.fail(where, f"expected 404, got {response.status_code} {response.content[:200]!r}")
        elif not response["Content-Type"].startswith("application/json"):
            self.fail(where, f"404 is not JSON: {response['Content-Type']}")
        if markers_in(response.content.decode(), self.alice.markers):
            self.fail(where, "404 body carries Alice's values")


def result_ids(body: Any) -> set[int]:
    return {item["id"] for item in body.get("results", [])} if isinstance(body, dict) else set()


def open_position_ids(body: Any) -> set[int]:
    return {item["id"] for item in body.get("positions", [])}


def recent_event_ids(body: Any) -> set[int]:
    return {item["id"] for item in body.get("recent_events", [])}


def normalized(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: normalized(v) for k, v in body.items() if k not in VOLATILE_KEYS}
    if isinstance(body, list):
        return [normalized(v) for v in body]
    return body


def with_query(path: str, **params: Any) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def next_link_of(trader: Trader, path: str, **params: Any) -> str:
    """The ``next`` link of ``trader``'s first page of ``path`` (one row per page)."""
    response = trader.client.get(with_query(path, page_size=1, **params))
    assert response.status_code == 200, response.content[:200]
    link = response.json()["next"]
    assert link, f"{trader.user.username} has a single row at {path}: no cursor to steal"
    return link


def session_client(trader: Trader) -> Client:
    """A browser: logged in through DRF's login page (``/api-auth/login/``), asking for HTML."""
    client = Client(HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    response = client.post("/api-auth/login/", {"username": trader.user.username, "password": trader.password})
    assert response.status_code == 302, response.content[:300]
    return client


def cache_attempts(att: Attempts, url: str, *, ids=None, owned=None) -> None:
    """Alice's cached answer within the TTL: JSON with Bob's token, then HTML with Bob's session.

    Cold read by Bob (the reference) → caches emptied → Alice reads twice (the second a page-cache
    hit when caching is on) → Bob reads the same URL: his answer equals his cold read, with none of
    Alice's values. The same through the browsable API with both logged in by session.
    """
    alice, bob = att.alice, att.bob
    caching = settings.API_CACHE_TTL_S > 0
    clear_caches()
    cold = att.bob_only(f"{url} (Bob cold)", bob.client.get(url), ids=ids, owned=owned)
    clear_caches()
    mine = alice.client.get(url)
    again = alice.client.get(url)
    assert mine.status_code == 200 and again.status_code == 200
    if caching and not again.has_header("Age"):
        att.fail(url, "Alice's second read was not a page-cache hit: the cache attempt proves nothing")
    assert markers_in(mine.content.decode(), alice.markers), f"{url}: Alice's answer shows none of her values"
    assert normalized(mine.json()) != normalized(cold), f"{url}: the traders' answers cannot be told apart"
    warm = att.bob_only(f"{url} (Bob after Alice cached it)", bob.client.get(url), ids=ids, owned=owned)
    if warm is not None and normalized(warm) != normalized(cold):
        att.fail(url, "Bob's answer after Alice's cached read differs from Bob's own answer")

    # The browsable API: both logged in by session, Accept: text/html, Alice's page cached first.
    alice_browser, bob_browser = session_client(alice), session_client(bob)
    clear_caches()
    page = alice_browser.get(url)
    page_again = alice_browser.get(url)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html"), page["Content-Type"]
    if caching and not page_again.has_header("Age"):
        att.fail(url, "Alice's second HTML read was not a page-cache hit")
    assert markers_in(page.content.decode(), alice.markers), f"{url}: Alice's HTML shows none of her values"
    bob_page = bob_browser.get(url)
    html = att.bob_only(f"{url} (Bob's HTML after Alice's)", bob_page)
    if html is not None and not bob_page["Content-Type"].startswith("text/html"):
        att.fail(url, f"Bob's browser got {bob_page['Content-Type']}")
    elif html is not None and not markers_in(html, bob.markers):
        att.fail(url, "Bob's HTML page shows none of his own values")


# --------------------------------------------------------------------------------------------
# One case per API operation
# --------------------------------------------------------------------------------------------
def account_attempts(att: Attempts, path: str, *, method: str = "get", data: Any = None) -> None:
    """Another user's account id in the query is a 404 (never Bob's data, never Alice's): Alice's own
    account id, also after Alice's page for that URL was cached; an id that does not exist; a
    non-number. Bob's own account id answers with his data."""
    alice, bob = att.alice, att.bob
    send = getattr(bob.client, method)
    kwargs = {"format": "json"} if method in ("post", "patch") else {}
    body = [data] if method in ("post", "patch") else []
    foreign = with_query(path, account=alice.account_id)
    if method == "get":
        clear_caches()
        mine = alice.client.get(foreign)
        assert mine.status_code == 200, mine.content[:200]
        alice.client.get(foreign)  # a page-cache hit when caching is on
    for url in (foreign, with_query(path, account=999_999_999), with_query(path, account="abc")):
        att.not_found(f"{method.upper()} {url} (not Bob's account)", send(url, *body, **kwargs))
    if method == "get":
        att.bob_only(f"GET {path}?account=<Bob's>", bob.client.get(with_query(path, account=bob.account_id)))


def case_api_root(att: Attempts) -> None:
    att.bob_only("GET /api/v1/", att.bob.client.get("/api/v1/"))


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def case_token(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    response = bob.client.post(
        "/api/v1/auth/token/", {"username": bob.user.username, "password": bob.password}, format="json"
    )
    body = att.bob_only("POST auth/token/", response)
    for kind in ("access", "refresh"):
        if body and str(_claims(body[kind])["user_id"]) != str(bob.id):
            att.fail("POST auth/token/", f"{kind} token is not Bob's")
    # a token request naming Alice with a wrong password gets nothing of hers
    response = bob.client.post(
        "/api/v1/auth/token/", {"username": alice.user.username, "password": "not-alices-password"}, format="json"
    )
    if response.status_code != 401 or "access" in response.json():
        att.fail("POST auth/token/ as Alice", f"{response.status_code} {response.content[:120]!r}")


def _pair(trader: Trader) -> dict:
    response = trader.client.post(
        "/api/v1/auth/token/", {"username": trader.user.username, "password": trader.password}, format="json"
    )
    assert response.status_code == 200
    return response.json()


def case_refresh(att: Attempts) -> None:
    pair = _pair(att.bob)
    body = att.bob_only(
        "POST auth/token/refresh/",
        att.bob.client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"),
    )
    if body and str(_claims(body["access"])["user_id"]) != str(att.bob.id):
        att.fail("POST auth/token/refresh/", "refreshed access token is not Bob's")


def case_verify(att: Attempts) -> None:
    body = att.bob_only(
        "POST auth/token/verify/",
        att.bob.client.post("/api/v1/auth/token/verify/", {"token": att.bob.token}, format="json"),
    )
    if body != {}:
        att.fail("POST auth/token/verify/", f"verify reveals {body!r}")


def case_logout(att: Attempts) -> None:
    alice_pair, bob_pair = _pair(att.alice), _pair(att.bob)
    att.bob_only(
        "POST auth/logout/",
        att.bob.client.post("/api/v1/auth/logout/", {"refresh": bob_pair["refresh"]}, format="json"),
    )
    # Bob's logout touched only his token: Alice's refresh still works
    response = att.alice.client.post("/api/v1/auth/token/refresh/", {"refresh": alice_pair["refresh"]}, format="json")
    if response.status_code != 200:
        att.fail("POST auth/logout/", f"Alice's refresh broke after Bob's logout: {response.status_code}")


def _list_attempts(
    att: Attempts, path: str, queries: list[dict], *, ids, owned, cursors: list[dict], empty: Sequence[dict] = ()
) -> None:
    """Bob lists ``path`` with each of ``queries`` (Alice's tickets and symbols among them), with the
    ``empty`` filters that only Alice's rows match, and follows Alice's ``next`` links for ``cursors``."""
    bob = att.bob
    for params in queries:
        url = with_query(path, **params)
        att.bob_only(f"GET {url}", bob.client.get(url), ids=ids, owned=owned)
    for params in empty:  # filters on something only Alice has
        url = with_query(path, **params)
        body = att.bob_only(f"GET {url}", bob.client.get(url), ids=ids, owned=owned)
        if body is not None and body.get("results"):
            att.fail(url, f"expected no rows for Bob, got {len(body['results'])}")
    # cursors taken from Alice's pages
    for params in cursors:
        link = next_link_of(att.alice, path, **params)
        att.bob_only(f"GET {link} (Alice's cursor)", bob.client.get(link), ids=ids, owned=owned)


def case_positions_list(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    _list_attempts(
        att,
        "/api/v1/positions/",
        [
            {},
            {"symbol": "XAUUSD"},
            {"status": "open"},
            {"symbol": "xauusd"},
            {"status": "closed"},
            {"page_size": 100000},
            {"user": alice.id},
            {"user_id": alice.id},
            {"ticket": 700101},
        ],
        ids=result_ids,
        owned=bob.ids(Position),
        cursors=[{}, {"status": "open"}],
        empty=[{"symbol": "USDJPY"}, {"status": "pending"}],
    )
    account_attempts(att, "/api/v1/positions/")
    # Alice's cursor on her own account: following it names her account, so it is a 404 for Bob
    link = next_link_of(alice, "/api/v1/positions/", account=alice.account_id)
    att.not_found("GET positions/ (Alice's cursor with her account)", bob.client.get(link))


def case_position_detail(att: Attempts) -> None:
    for pk in sorted(att.alice.ids(Position)):
        att.not_found(f"GET positions/{pk}/ (Alice's)", att.bob.client.get(f"/api/v1/positions/{pk}/"))
    for pk in sorted(att.bob.ids(Position)):
        att.bob_only(f"GET positions/{pk}/ (Bob's own)", att.bob.client.get(f"/api/v1/positions/{pk}/"))
        # his own row, asked through Alice's account: 404
        url = with_query(f"/api/v1/positions/{pk}/", account=att.alice.account_id)
        att.not_found(f"GET {url} (Bob's row, Alice's account)", att.bob.client.get(url))


def case_position_register(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    alice_row = Position.objects.get(user_id=alice.id, ticket=810001)
    # Bob registers Alice's ticket, naming Alice as the owner in every way a body could
    body = {
        "ticket": 810001,
        "symbol": "USDJPY",
        "side": "sell",
        "volume": "0.30",
        "requested_price": "149.901",
        "user": alice.id,
        "user_id": alice.id,
        "id": alice_row.pk,
    }
    created = att.bob_only("POST positions/", bob.client.post("/api/v1/positions/", body, format="json"))
    if created is not None:
        row = Position.objects.get(pk=created["id"])
        if row.user_id != bob.id or row.pk == alice_row.pk:
            att.fail("POST positions/", f"row {row.pk} belongs to user {row.user_id}")
    alice_after = Position.objects.get(pk=alice_row.pk)
    if (alice_after.user_id, alice_after.side, alice_after.volume) != (alice.id, "buy", alice_row.volume):
        att.fail("POST positions/", "Alice's ticket 810001 changed")
    # Bob names Alice's account id in the body: 404, nothing written
    count = Position.objects.count()
    response = bob.client.post(
        "/api/v1/positions/", {**body, "ticket": 810002, "account": alice.account_id}, format="json"
    )
    att.not_found("POST positions/ with Alice's account id", response)
    if Position.objects.count() != count:
        att.fail("POST positions/ with Alice's account id", "a row was written")


def case_positions_open(att: Attempts) -> None:
    owned = att.bob.ids(Position)
    for params in ({}, {"symbol": "XAUUSD"}, {"symbol": "GBPUSD"}):
        cache_attempts(att, with_query("/api/v1/positions/open/", **params), ids=open_position_ids, owned=owned)
    body = att.bob_only("open ?symbol=USDJPY", att.bob.client.get("/api/v1/positions/open/?symbol=USDJPY"))
    if body is not None and body["positions"]:
        att.fail("GET positions/open/?symbol=USDJPY", "Bob has no USDJPY, yet positions came back")
    account_attempts(att, "/api/v1/positions/open/")


def case_logs_list(att: Attempts) -> None:
    hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()
    in_an_hour = (timezone.now() + timedelta(hours=1)).isoformat()
    _list_attempts(
        att,
        "/api/v1/reconciliation/logs/",
        [
            {},
            {"ticket": 700101},
            {"symbol": "XAUUSD"},
            {"event_type": "divergence"},
            {"status": "warning"},
            {"matched": "true"},
            {"divergence_reason": "sl_mismatch"},
            {"created_after": hour_ago, "created_before": in_an_hour},
            {"page_size": 100000},
            {"user": att.alice.id},
        ],
        ids=result_ids,
        owned=att.bob.ids(ReconciliationLog),
        cursors=[{}, {"status": "warning"}, {"event_type": "sync"}],
        empty=[{"ticket": 810001}, {"symbol": "USDJPY"}],
    )
    account_attempts(att, "/api/v1/reconciliation/logs/")
    link = next_link_of(att.alice, "/api/v1/reconciliation/logs/", account=att.alice.account_id)
    att.not_found("GET logs/ (Alice's cursor with her account)", att.bob.client.get(link))


def case_log_detail(att: Attempts) -> None:
    for pk in sorted(att.alice.ids(ReconciliationLog)):
        att.not_found(f"GET logs/{pk}/ (Alice's)", att.bob.client.get(f"/api/v1/reconciliation/logs/{pk}/"))
    pk = min(att.bob.ids(ReconciliationLog))
    att.bob_only(f"GET logs/{pk}/ (Bob's own)", att.bob.client.get(f"/api/v1/reconciliation/logs/{pk}/"))
    url = with_query(f"/api/v1/reconciliation/logs/{pk}/", account=att.alice.account_id)
    att.not_found(f"GET {url} (Bob's row, Alice's account)", att.bob.client.get(url))


def case_reconciliation_status(att: Attempts) -> None:
    cache_attempts(att, "/api/v1/reconciliation/status/", ids=recent_event_ids, owned=att.bob.ids(ReconciliationLog))
    account_attempts(att, "/api/v1/reconciliation/status/")


def _snapshot(trader: Trader) -> list:
    return [
        list(Position.objects.filter(user_id=trader.id).order_by("pk").values_list("pk", "status", "price_current")),
        ReconciliationLog.objects.filter(user_id=trader.id).count(),
        list(MarketAlert.objects.filter(user_id=trader.id).values_list("pk", "level", "resolved_at")),
        list(DrawdownAlert.objects.filter(user_id=trader.id).values_list("pk", "level", "resolved_at")),
    ]


def case_sync(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    before = _snapshot(alice)
    # Bob's worker posts Alice's sync id (the idempotency key) with Alice's tickets: a NEW sync of
    # Bob's (201), never a replay of Alice's stored summary (200), and Alice's rows are untouched
    body = mt5.sync_body(
        sync_id=alice.sync_ids[0],
        broker_time=timezone.now() - timedelta(seconds=5),
        account=mt5.account_info(**ACCOUNT, currency="USD", balance="20222.00", equity="20230.29"),
        positions=[
            mt5.position(
                ticket=700101, symbol="XAUUSD", type=0, volume="0.20", price_open="2922.29", price_current="2925.29"
            ),
            mt5.position(
                ticket=810001, symbol="USDJPY", type=0, volume="0.50", price_open="150.229", price_current="150.329"
            ),
        ],  # fmt: skip
        quotes=[mt5.tick(symbol="XAUUSD", bid="2925.29", ask="2925.59")],
    )
    response = bob.client.post("/api/v1/reconciliation/syncs/", body, format="json")
    att.bob_only("POST syncs/ with Alice's sync_id", response)
    if response.status_code != 201:
        att.fail("POST syncs/ with Alice's sync_id", f"expected a new sync (201), got {response.status_code}")
    if _snapshot(alice) != before:
        att.fail("POST syncs/", "Alice's positions, log or alerts changed after Bob's sync")


def case_guards_status(att: Attempts) -> None:
    cache_attempts(att, "/api/v1/guards/status/")
    account_attempts(att, "/api/v1/guards/status/")


def alert_ids(body: Any) -> set[tuple[str, int]]:
    return {(item["kind"], item["id"]) for item in body.get("results", [])}


def case_alerts(att: Attempts) -> None:
    bob = att.bob
    owned = {("drawdown", pk) for pk in bob.ids(DrawdownAlert)} | {("market", pk) for pk in bob.ids(MarketAlert)}
    _list_attempts(
        att,
        "/api/v1/guards/alerts/",
        [
            {},
            {"symbol": "XAUUSD"},
            {"level": "warning"},
            {"kind": "drawdown"},
            {"kind": "market"},
            {"open": "true"},
            {"condition": "wide_spread"},
            {"page_size": 100000},
            {"user": att.alice.id},
        ],
        ids=alert_ids,
        owned=owned,
        cursors=[{}, {"level": "warning"}],
        empty=[{"symbol": "USDJPY"}],
    )
    account_attempts(att, "/api/v1/guards/alerts/")


def case_config_get(att: Attempts) -> None:
    body = att.bob_only("GET guards/config/", att.bob.client.get("/api/v1/guards/config/"))
    if body is not None and body["min_equity"] != "222.29":
        att.fail("GET guards/config/", f"min_equity {body['min_equity']} is not Bob's 222.29")
    html = att.bob_only("GET guards/config/ (HTML)", session_client(att.bob).get("/api/v1/guards/config/"))
    if html is not None and "222.29" not in html:
        att.fail("GET guards/config/ (HTML)", "Bob's page does not show his min_equity")
    account_attempts(att, "/api/v1/guards/config/")


def case_config_patch(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    alice_config = GuardConfig.objects.get(user_id=alice.id)
    body = {"min_equity": "333.39", "user": alice.id, "user_id": alice.id, "id": alice_config.pk}
    att.bob_only("PATCH guards/config/", bob.client.patch("/api/v1/guards/config/", body, format="json"))
    if str(GuardConfig.objects.get(user_id=bob.id).min_equity) != "333.39":
        att.fail("PATCH guards/config/", "Bob's own config was not updated")
    if str(GuardConfig.objects.get(user_id=alice.id).min_equity) != "111.11":
        att.fail("PATCH guards/config/", "Alice's config changed")
    account_attempts(att, "/api/v1/guards/config/", method="patch", data={"min_equity": "444.49"})
    if str(GuardConfig.objects.get(user_id=alice.id).min_equity) != "111.11":
        att.fail("PATCH guards/config/?account=<Alice's>", "Alice's config changed")


def case_accounts(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    owned = set(Account.objects.filter(user_id=bob.id).values_list("pk", flat=True))
    for params in ({}, {"user": alice.id}, {"account": alice.account_id}, {"user_id": alice.id}):
        url = with_query("/api/v1/accounts/", **params)
        body = att.bob_only(f"GET {url}", bob.client.get(url))
        ids = {row["id"] for row in body or []}
        if body is not None and ids != owned:
            att.fail(url, f"account ids {sorted(ids)} are not exactly Bob's {sorted(owned)}")


def _endpoints(att: Attempts) -> tuple[int, int]:
    """One webhook endpoint per trader, its URL carrying the trader's balance (a marker); their ids."""
    ids = []
    for trader, p in ((att.alice, "10111.00"), (att.bob, "20222.00")):
        response = trader.client.post("/api/v1/webhooks/", {"url": f"https://hooks.example.com/{p}"}, format="json")
        assert response.status_code == 201, response.content[:300]
        ids.append(response.json()["id"])
    return ids[0], ids[1]


def case_webhooks_list(att: Attempts) -> None:
    from notifications.models import WebhookEndpoint

    _, bob_id = _endpoints(att)
    owned = set(WebhookEndpoint.objects.filter(user_id=att.bob.id).values_list("pk", flat=True))
    _list_attempts(
        att,
        "/api/v1/webhooks/",
        [{}, {"user": att.alice.id}, {"page_size": 100000}],
        ids=result_ids,
        owned=owned,
        cursors=[],
    )
    body = att.bob_only("GET webhooks/", att.bob.client.get("/api/v1/webhooks/"), ids=result_ids, owned=owned)
    if body is not None and result_ids(body) != {bob_id}:
        att.fail("GET webhooks/", f"Bob sees {result_ids(body)}, not his endpoint {bob_id}")


def case_webhook_create(att: Attempts) -> None:
    from notifications.models import WebhookEndpoint

    alice_id, _ = _endpoints(att)
    body = {"url": "https://hooks.example.com/bob-2", "user": att.alice.id, "user_id": att.alice.id, "id": alice_id}
    created = att.bob_only("POST webhooks/", att.bob.client.post("/api/v1/webhooks/", body, format="json"))
    if created is not None and WebhookEndpoint.objects.get(pk=created["id"]).user_id != att.bob.id:
        att.fail("POST webhooks/", "the endpoint was created for someone else")
    if WebhookEndpoint.objects.get(pk=alice_id).url != "https://hooks.example.com/10111.00":
        att.fail("POST webhooks/", "Alice's endpoint changed")


def case_webhook_detail(att: Attempts) -> None:
    alice_id, bob_id = _endpoints(att)
    att.not_found("GET webhooks/{alice}/", att.bob.client.get(f"/api/v1/webhooks/{alice_id}/"))
    att.bob_only("GET webhooks/{bob}/", att.bob.client.get(f"/api/v1/webhooks/{bob_id}/"))


def case_webhook_patch(att: Attempts) -> None:
    from notifications.models import WebhookEndpoint

    alice_id, bob_id = _endpoints(att)
    body = {"active": False, "user": att.alice.id}
    att.not_found("PATCH webhooks/{alice}/", att.bob.client.patch(f"/api/v1/webhooks/{alice_id}/", body, format="json"))
    att.bob_only("PATCH webhooks/{bob}/", att.bob.client.patch(f"/api/v1/webhooks/{bob_id}/", body, format="json"))
    if (
        not WebhookEndpoint.objects.get(pk=alice_id).active
        or WebhookEndpoint.objects.get(pk=bob_id).user_id != att.bob.id
    ):
        att.fail("PATCH webhooks/", "Alice's endpoint changed or Bob's changed owner")


def case_webhook_delete(att: Attempts) -> None:
    from notifications.models import WebhookEndpoint

    alice_id, bob_id = _endpoints(att)
    att.not_found("DELETE webhooks/{alice}/", att.bob.client.delete(f"/api/v1/webhooks/{alice_id}/"))
    att.count += 1
    if att.bob.client.delete(f"/api/v1/webhooks/{bob_id}/").status_code != 204:
        att.fail("DELETE webhooks/{bob}/", "Bob could not delete his own endpoint")
    if not WebhookEndpoint.objects.filter(pk=alice_id).exists():
        att.fail("DELETE webhooks/", "Alice's endpoint was deleted")


def _history_attempts(att: Attempts, path: str, extra: list[dict]) -> None:
    """Bob reads a history endpoint with defaults, a range around both traders' rows and ``extra`` queries:
    only his figures (his equity values appear, Alice's never)."""
    around = {
        "from": (timezone.now() - timedelta(hours=1)).isoformat(),
        "to": (timezone.now() + timedelta(hours=1)).isoformat(),
    }
    queries: list[dict[str, Any]] = [{}, around, {"user": att.alice.id}, *extra]
    for params in queries:
        url = with_query(path, **params)
        att.bob_only(f"GET {url}", att.bob.client.get(url))
    account_attempts(att, path)


def case_equity(att: Attempts) -> None:
    _history_attempts(att, "/api/v1/equity/", [{"interval": "5m"}, {"interval": "1d"}])
    body = att.bob_only("GET equity/?interval=5m", att.bob.client.get("/api/v1/equity/?interval=5m"))
    if body is not None and not markers_in(json.dumps(body), att.bob.markers):
        att.fail("GET equity/", "Bob's own equity curve shows none of his values")


def case_pnl_daily(att: Attempts) -> None:
    _history_attempts(att, "/api/v1/pnl/daily/", [{"tz": "Europe/Athens"}])


def case_pnl(att: Attempts) -> None:
    _history_attempts(att, "/api/v1/pnl/", [{"from": (timezone.now() - timedelta(days=1)).isoformat()}])
    # Bob's total counts his own deals only (his closing deal of 700102 and his zero balance operation)
    body = att.bob_only("GET pnl/", att.bob.client.get("/api/v1/pnl/"))
    bob_account = Account.objects.get(user_id=att.bob.user.pk).pk
    if body is not None and (body["account"], body["closing_deals"]) != (bob_account, 1):
        att.fail("GET pnl/", f"Bob's total is not his own: {body!r}")


def case_stats(att: Attempts) -> None:
    _history_attempts(att, "/api/v1/stats/", [{"symbol": "XAUUSD"}, {"symbol": "USDJPY"}])


RULE = {"name": "daily", "kind": "daily_loss", "anchor": "day_start", "percent": "5", "timezone": "Europe/Prague"}


def _rules(att: Attempts) -> tuple[LossRule, LossRule]:
    """One loss rule each (Alice's named with one of her markers' digits kept out of Bob's answers)."""
    alice, bob = att.alice, att.bob
    mine = LossRule.objects.create(
        user_id=alice.user.pk, account=Account.objects.get(user_id=alice.user.pk), name="alice-rule", kind="max_loss",
        anchor="initial_capital", amount=Decimal("4321.09"),
    )  # fmt: skip
    his = LossRule.objects.create(
        user_id=bob.user.pk, account=Account.objects.get(user_id=bob.user.pk), name="bob-rule", kind="max_loss",
        anchor="initial_capital", amount=Decimal("1234.56"),
    )  # fmt: skip
    return mine, his


def _alice_rule_unchanged(att: Attempts, where: str, rule: LossRule) -> None:
    row = LossRule.objects.filter(pk=rule.pk).values("name", "amount", "user_id").first()
    if row != {"name": "alice-rule", "amount": Decimal("4321.09"), "user_id": att.alice.user.pk}:
        att.fail(where, f"Alice's rule changed: {row}")


def case_rules_list(att: Attempts) -> None:
    alice_rule, bob_rule = _rules(att)
    alice_account = Account.objects.get(user_id=att.alice.user.pk)
    body = att.bob_only("GET guards/rules/", att.bob.client.get("/api/v1/guards/rules/"))
    if body is not None and ([r["id"] for r in body] != [bob_rule.pk] or "alice-rule" in json.dumps(body)):
        att.fail("GET guards/rules/", f"not only Bob's rule: {body}")
    att.not_found(
        "GET guards/rules/?account=<Alice's>", att.bob.client.get(f"/api/v1/guards/rules/?account={alice_account.pk}")
    )


def case_rules_create(att: Attempts) -> None:
    alice_account = Account.objects.get(user_id=att.alice.user.pk)
    url = f"/api/v1/guards/rules/?account={alice_account.pk}"
    att.not_found("POST guards/rules/ on Alice's account", att.bob.client.post(url, RULE, format="json"))
    body = {**RULE, "user": att.alice.user.pk, "account": alice_account.pk}
    created = att.bob_only("POST guards/rules/", att.bob.client.post("/api/v1/guards/rules/", body, format="json"))
    if created is not None and LossRule.objects.get(pk=created["id"]).user_id != att.bob.user.pk:
        att.fail("POST guards/rules/", "the rule was not Bob's")
    if LossRule.objects.filter(user_id=att.alice.user.pk).exists():
        att.fail("POST guards/rules/", "a rule was created for Alice")


def case_rule_detail(att: Attempts) -> None:
    alice_rule, _ = _rules(att)
    att.not_found("GET guards/rules/{Alice's}/", att.bob.client.get(f"/api/v1/guards/rules/{alice_rule.pk}/"))


def case_rule_patch(att: Attempts) -> None:
    alice_rule, bob_rule = _rules(att)
    url = f"/api/v1/guards/rules/{alice_rule.pk}/"
    att.not_found("PATCH guards/rules/{Alice's}/", att.bob.client.patch(url, {"name": "hacked"}, format="json"))
    _alice_rule_unchanged(att, "PATCH guards/rules/", alice_rule)
    own = att.bob.client.patch(f"/api/v1/guards/rules/{bob_rule.pk}/", {"user": att.alice.user.pk}, format="json")
    att.bob_only("PATCH guards/rules/{Bob's}/", own)
    if LossRule.objects.get(pk=bob_rule.pk).user_id != att.bob.user.pk:
        att.fail("PATCH guards/rules/", "Bob's rule moved to another user")


def case_rule_delete(att: Attempts) -> None:
    alice_rule, _ = _rules(att)
    att.not_found("DELETE guards/rules/{Alice's}/", att.bob.client.delete(f"/api/v1/guards/rules/{alice_rule.pk}/"))
    _alice_rule_unchanged(att, "DELETE guards/rules/", alice_rule)


def case_presets_list(att: Attempts) -> None:
    att.bob_only("GET guards/rules/presets/", att.bob.client.get("/api/v1/guards/rules/presets/"))


def case_presets_apply(att: Attempts) -> None:
    alice_rule, _ = _rules(att)
    alice_account = Account.objects.get(user_id=att.alice.user.pk)
    body = {"preset": "ftmo_2step", "initial_capital": "100000"}
    url = f"/api/v1/guards/rules/presets/?account={alice_account.pk}"
    att.not_found("POST guards/rules/presets/ on Alice's account", att.bob.client.post(url, body, format="json"))
    att.bob_only(
        "POST guards/rules/presets/", att.bob.client.post("/api/v1/guards/rules/presets/", body, format="json")
    )
    if LossRule.objects.filter(user_id=att.alice.user.pk).count() != 1:
        att.fail("POST guards/rules/presets/", "Alice's rules changed")
    _alice_rule_unchanged(att, "POST guards/rules/presets/", alice_rule)


def _instrument_setting(att: Attempts) -> InstrumentGuardSetting:
    """Alice's EURUSD override (entry tolerance 7.777 pips, a figure no default has)."""
    return InstrumentGuardSetting.objects.create(
        user_id=att.alice.user.pk, account=Account.objects.get(user_id=att.alice.user.pk), symbol="EURUSD",
        entry_tolerance_pips=Decimal("7.777"),
    )  # fmt: skip


def case_instruments_list(att: Attempts) -> None:
    _instrument_setting(att)
    alice_account = Account.objects.get(user_id=att.alice.user.pk)
    body = att.bob_only("GET guards/instruments/", att.bob.client.get("/api/v1/guards/instruments/"))
    if body is not None and ("7.777" in json.dumps(body) or any(row["override"] for row in body)):
        att.fail("GET guards/instruments/", "Alice's override in Bob's list")
    att.not_found(
        "GET guards/instruments/?account=<Alice's>",
        att.bob.client.get(f"/api/v1/guards/instruments/?account={alice_account.pk}"),
    )


def case_instrument_patch(att: Attempts) -> None:
    mine = _instrument_setting(att)
    alice_account = Account.objects.get(user_id=att.alice.user.pk)
    url = f"/api/v1/guards/instruments/EURUSD/?account={alice_account.pk}"
    att.not_found(
        "PATCH guards/instruments/EURUSD/ on Alice's account",
        att.bob.client.patch(url, {"entry_tolerance_pips": "1"}, format="json"),
    )
    body = {"entry_tolerance_pips": "2.5", "user": att.alice.user.pk, "account": alice_account.pk}
    own = att.bob.client.patch("/api/v1/guards/instruments/EURUSD/", body, format="json")
    att.bob_only("PATCH guards/instruments/EURUSD/ (Bob's own)", own)
    mine.refresh_from_db()
    if (mine.user_id, mine.entry_tolerance_pips) != (att.alice.user.pk, Decimal("7.777")):
        att.fail("PATCH guards/instruments/", f"Alice's override changed: {mine.entry_tolerance_pips}")
    rows = list(InstrumentGuardSetting.objects.values_list("user_id", "account__user_id", "entry_tolerance_pips"))
    if sorted(rows) != sorted([(att.alice.user.pk, att.alice.user.pk, Decimal("7.777")),
                               (att.bob.user.pk, att.bob.user.pk, Decimal("2.5"))]):  # fmt: skip
        att.fail("PATCH guards/instruments/", f"settings are not each trader's own: {rows}")


def case_deals_list(att: Attempts) -> None:
    alice, bob = att.alice, att.bob
    _list_attempts(
        att,
        "/api/v1/deals/",
        [{}, {"symbol": "EURUSD"}, {"position_id": 700102}, {"entry": 1}, {"page_size": 100000},
         {"user": alice.id}, {"account": bob.account_id}],
        ids=result_ids,
        owned=bob.ids(Deal),
        cursors=[{}],
    )  # fmt: skip
    account_attempts(att, "/api/v1/deals/")


def case_deal_detail(att: Attempts) -> None:
    for pk in sorted(att.alice.ids(Deal)):
        att.not_found(f"GET deals/{pk}/ (Alice's)", att.bob.client.get(f"/api/v1/deals/{pk}/"))
    for pk in sorted(att.bob.ids(Deal)):
        att.bob_only(f"GET deals/{pk}/ (Bob's own)", att.bob.client.get(f"/api/v1/deals/{pk}/"))


def case_position_deals(att: Attempts) -> None:
    for pk in sorted(att.alice.ids(Position)):
        att.not_found(f"GET positions/{pk}/deals/ (Alice's)", att.bob.client.get(f"/api/v1/positions/{pk}/deals/"))
    owned = att.bob.ids(Deal)
    for pk in sorted(att.bob.ids(Position)):
        body = att.bob_only(
            f"GET positions/{pk}/deals/ (Bob's own)", att.bob.client.get(f"/api/v1/positions/{pk}/deals/")
        )
        foreign = {row["id"] for row in body or []} - owned
        if foreign:
            att.fail(f"GET positions/{pk}/deals/", f"deal ids {sorted(foreign)} are not Bob's")


def case_position_patch(att: Attempts) -> None:
    alice_rows = {row.pk: (row.sl, row.tp) for row in Position.objects.filter(user_id=att.alice.id)}
    for pk in sorted(alice_rows):
        response = att.bob.client.patch(f"/api/v1/positions/{pk}/", {"sl": None, "user": att.bob.id}, format="json")
        att.not_found(f"PATCH positions/{pk}/ (Alice's)", response)
    after = {row.pk: (row.sl, row.tp) for row in Position.objects.filter(user_id=att.alice.id)}
    if after != alice_rows:
        att.fail("PATCH positions/{pk}/", "Alice's stops changed")
    pk = Position.objects.get(user_id=att.bob.id, ticket=700101).pk
    att.bob_only(f"PATCH positions/{pk}/ (Bob's own)", att.bob.client.patch(f"/api/v1/positions/{pk}/", {"tp": None}))


LEAK_CASES: dict[tuple[str, str], Callable[[Attempts], None]] = {
    ("GET", "/api/v1/"): case_api_root,
    ("POST", "/api/v1/auth/token/"): case_token,
    ("POST", "/api/v1/auth/token/refresh/"): case_refresh,
    ("POST", "/api/v1/auth/token/verify/"): case_verify,
    ("POST", "/api/v1/auth/logout/"): case_logout,
    ("GET", "/api/v1/positions/"): case_positions_list,
    ("POST", "/api/v1/positions/"): case_position_register,
    ("GET", "/api/v1/positions/{pk}/"): case_position_detail,
    ("PATCH", "/api/v1/positions/{pk}/"): case_position_patch,
    ("GET", "/api/v1/positions/{pk}/deals/"): case_position_deals,
    ("GET", "/api/v1/deals/"): case_deals_list,
    ("GET", "/api/v1/deals/{pk}/"): case_deal_detail,
    ("GET", "/api/v1/positions/open/"): case_positions_open,
    ("GET", "/api/v1/guards/instruments/"): case_instruments_list,
    ("PATCH", "/api/v1/guards/instruments/{symbol}/"): case_instrument_patch,
    ("GET", "/api/v1/reconciliation/logs/"): case_logs_list,
    ("GET", "/api/v1/reconciliation/logs/{pk}/"): case_log_detail,
    ("GET", "/api/v1/reconciliation/status/"): case_reconciliation_status,
    ("POST", "/api/v1/reconciliation/syncs/"): case_sync,
    ("GET", "/api/v1/guards/status/"): case_guards_status,
    ("GET", "/api/v1/guards/alerts/"): case_alerts,
    ("GET", "/api/v1/guards/config/"): case_config_get,
    ("PATCH", "/api/v1/guards/config/"): case_config_patch,
    ("GET", "/api/v1/guards/rules/"): case_rules_list,
    ("POST", "/api/v1/guards/rules/"): case_rules_create,
    ("GET", "/api/v1/guards/rules/{pk}/"): case_rule_detail,
    ("PATCH", "/api/v1/guards/rules/{pk}/"): case_rule_patch,
    ("DELETE", "/api/v1/guards/rules/{pk}/"): case_rule_delete,
    ("GET", "/api/v1/guards/rules/presets/"): case_presets_list,
    ("POST", "/api/v1/guards/rules/presets/"): case_presets_apply,
    ("GET", "/api/v1/accounts/"): case_accounts,
    ("GET", "/api/v1/webhooks/"): case_webhooks_list,
    ("POST", "/api/v1/webhooks/"): case_webhook_create,
    ("GET", "/api/v1/webhooks/{pk}/"): case_webhook_detail,
    ("PATCH", "/api/v1/webhooks/{pk}/"): case_webhook_patch,
    ("DELETE", "/api/v1/webhooks/{pk}/"): case_webhook_delete,
    ("GET", "/api/v1/equity/"): case_equity,
    ("GET", "/api/v1/pnl/"): case_pnl,
    ("GET", "/api/v1/pnl/daily/"): case_pnl_daily,
    ("GET", "/api/v1/stats/"): case_stats,
}
HOT = [("GET", "/api/v1/positions/open/"), ("GET", "/api/v1/reconciliation/status/"), ("GET", "/api/v1/guards/status/")]


def test_every_api_operation_has_a_leak_case():
    routed = {op.key for op in api_operations()}
    assert routed - set(LEAK_CASES) == set(), "API operations without a leak case: add one to LEAK_CASES"
    assert set(LEAK_CASES) - routed == set(), "leak cases for operations the URL conf no longer has"


@pytest.mark.parametrize("operation", sorted(LEAK_CASES), ids=lambda op: f"{op[0]} {op[1]}")
def test_bob_gets_only_his_own_data_or_404(operation, traders):
    alice, bob = traders
    attempts = Attempts(alice, bob)
    LEAK_CASES[operation](attempts)
    assert attempts.count > 0
    assert attempts.problems == [], json.dumps(attempts.problems, indent=1)


@pytest.mark.redis
@pytest.mark.parametrize("operation", HOT, ids=lambda op: f"{op[0]} {op[1]}")
def test_cache_attempts_on_redis(operation, traders):
    # The same cache attempts, required to run against Redis in CI (page cache and selector cache
    # shared by every process, where a key missing the user would leak across workers).
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert settings.API_CACHE_TTL_S > 0
    alice, bob = traders
    attempts = Attempts(alice, bob)
    LEAK_CASES[operation](attempts)
    assert attempts.problems == [], json.dumps(attempts.problems, indent=1)
