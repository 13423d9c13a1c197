"""Signed webhooks: outbox rows written with the events, delivered in order, once, with retries.

A real receiver on 127.0.0.1 (``receiver.Receiver``) verifies every signature as a customer would
(``notifications.signing.verify``). Time is a fake clock passed to the worker: a "minute" of outage
is 60 clock seconds, not a real minute.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from notifications import signing
from notifications.models import WebhookDelivery, WebhookEndpoint
from notifications.services import backoff, deliver_due
from notifications.tests.receiver import Receiver
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, sync_payload

pytestmark = pytest.mark.django_db
WEBHOOKS = "/api/v1/webhooks/"


class FakeClock:
    """The worker's clock: starts a second after the real now (the outbox rows are due), moved by hand."""

    def __init__(self) -> None:
        self.start = self.now = timezone.now() + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def create_endpoint(client, url: str, **fields) -> dict:
    response = client.post(WEBHOOKS, {"url": url, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def post_syncs(client, count: int = 2) -> None:
    """``count`` syncs: the first opens an unexpected_at_broker divergence (ticket 5001), the next close it."""
    clock = Clock()
    for i in range(count):
        positions = [broker_position(5001, price_open="1.10000")] if i == 0 else []
        body = sync_payload(
            broker_time=clock.tick(), positions=positions, quotes=[quote("EURUSD", "1.10000", "1.10010")]
        )
        response = client.post(SYNC_URL, body, format="json")
        assert response.status_code == 201, response.content


def assert_signed_in_order(receiver: Receiver, secret: str, at: datetime, expected_ids: list[int]) -> None:
    ids = []
    for request in receiver.received:
        header = request.headers[signing.SIGNATURE_HEADER]
        assert signing.verify(secret, header, request.body, now=int(at.timestamp()), tolerance_s=3600), header
        ids.append(json.loads(request.body)["id"])
    assert ids == expected_ids  # exactly one delivery per event, in event order


def test_each_event_is_delivered_once_signed_and_in_order(auth_client, user, receiver):
    # given an endpoint for every event type
    endpoint = create_endpoint(auth_client, receiver.url)
    # when two syncs commit (sync rows, a divergence, its resolution / close)
    post_syncs(auth_client, 2)
    events = list(ReconciliationLog.objects.filter(user=user).order_by("pk").values_list("pk", "event_type"))
    assert {"sync", "divergence"} <= {kind for _, kind in events}
    # then each has one pending outbox row, written with it
    assert WebhookDelivery.objects.filter(status="pending").count() == len(events)
    clock = FakeClock()
    stats = deliver_due(now=clock)
    # and one worker pass delivers every event once, signed, in log id order
    assert stats.delivered == len(events)
    assert_signed_in_order(receiver, endpoint["secret"], clock.now, [pk for pk, _ in events])
    first = json.loads(receiver.received[0].body)
    assert first["type"] == events[0][1] and first["data"]["id"] == events[0][0]
    assert receiver.received[0].headers["Tradingsite-Event"] == events[0][1]
    # and a second pass sends nothing again
    assert deliver_due(now=clock).delivered == 0
    assert len(receiver.received) == len(events)


def test_a_receiver_down_for_a_minute_gets_every_event_once_after_it_recovers(auth_client, user, receiver):
    endpoint = create_endpoint(auth_client, receiver.url)
    port = receiver.port
    receiver.stop()  # down: connection refused
    post_syncs(auth_client, 2)
    event_ids = list(ReconciliationLog.objects.filter(user=user).order_by("pk").values_list("pk", flat=True))
    clock = FakeClock()
    # a minute of outage, one worker pass per clock second: the head is tried at 0, 5, 15, 35 s
    # (backoff 5, 10, 20 s), later events wait behind it and are never tried
    for _ in range(60):
        deliver_due(now=clock)
        clock.advance(1)
    head = WebhookDelivery.objects.order_by("event_id").first()
    assert head.attempts == 4 and head.status == "pending"
    assert head.next_attempt_at == clock.start + timedelta(seconds=75)  # tried at 35 s, + 40 s
    assert WebhookDelivery.objects.filter(attempts=0).count() == len(event_ids) - 1
    # the receiver comes back on its port; the worker keeps passing for another minute
    receiver.port = port
    receiver.start()
    for _ in range(60):
        deliver_due(now=clock)
        clock.advance(1)
    # every event arrived exactly once, in order, correctly signed; the head on its 5th attempt
    assert_signed_in_order(receiver, endpoint["secret"], clock.now, event_ids)
    head.refresh_from_db()
    assert (head.status, head.attempts) == ("delivered", 5)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


@override_settings(WEBHOOK_MAX_ATTEMPTS=3)
def test_after_max_attempts_a_delivery_is_dead_and_the_queue_moves_on(auth_client, user, receiver):
    create_endpoint(auth_client, receiver.url, event_types=["sync"])
    receiver.status = 500
    post_syncs(auth_client, 2)
    clock = FakeClock()
    # attempts at 0, 5 and 15 s (backoff 5, 10): the third failure dead-letters the first event
    for _ in range(16):
        deliver_due(now=clock)
        clock.advance(1)
    first, second = WebhookDelivery.objects.order_by("event_id")
    assert (first.status, first.attempts, first.last_status_code) == ("dead", 3, 500)
    # the next event is tried right after (same pass), without waiting behind the dead one
    assert second.attempts == 1
    receiver.status = 204
    clock.advance(5)
    deliver_due(now=clock)
    second.refresh_from_db()
    assert second.status == "delivered"
    assert [json.loads(r.body)["id"] for r in receiver.received] == [second.event_id]


def test_backoff_doubles_from_the_base_and_is_capped():
    # base 5 s: 5, 10, 20, 40 s; cap 3600 s reached at attempt 11 (5 × 2^10 = 5120 > 3600)
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(11).total_seconds() == 3600


def test_filters_event_types_and_minimum_level(auth_client, user):
    create_endpoint(auth_client, "http://127.0.0.1:9/a", event_types=["divergence"])
    create_endpoint(auth_client, "http://127.0.0.1:9/b", min_level="warning")
    create_endpoint(auth_client, "http://127.0.0.1:9/c", active=False)
    post_syncs(auth_client, 2)
    a, b, c = WebhookEndpoint.objects.order_by("url")
    assert set(a.deliveries.values_list("event_type", flat=True)) == {"divergence"}
    levels = set(
        ReconciliationLog.objects.filter(pk__in=b.deliveries.values("event_id")).values_list("status", flat=True)
    )
    assert levels and levels <= {"warning", "failed"}
    assert c.deliveries.count() == 0


def test_a_rejected_sync_writes_no_outbox_row(auth_client, user):
    create_endpoint(auth_client, "http://127.0.0.1:9/a")
    post_syncs(auth_client, 1)
    before = WebhookDelivery.objects.count()
    # a sync older than the last accepted one is a 409: its transaction (and outbox rows) roll back
    old = sync_payload(broker_time=Clock().tick(-60), positions=[])
    assert auth_client.post(SYNC_URL, old, format="json").status_code == 409
    assert WebhookDelivery.objects.count() == before


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    # hand-checked: HMAC-SHA256(key=b"whsec_test", msg=b"1700000000.{}") computed with
    # `python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test",b"1700000000.{}",hashlib.sha256).hexdigest())'`
    header = signing.signature_header("whsec_test", 1700000000, b"{}")
    assert header == "t=1700000000,v1=" + EXPECTED_DIGEST
    assert signing.verify("whsec_test", header, b"{}", now=1700000100)
    assert not signing.verify("whsec_test", header, b"{ }", now=1700000100)  # body changed
    assert not signing.verify("other", header, b"{}", now=1700000100)  # wrong secret
    assert not signing.verify("whsec_test", header, b"{}", now=1700000301)  # older than 300 s
    assert not signing.verify("whsec_test", "garbage", b"{}", now=1700000000)


EXPECTED_DIGEST = "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"


def test_deliver_webhooks_command_is_bounded(auth_client, user, receiver):
    create_endpoint(auth_client, receiver.url, event_types=["sync"])
    post_syncs(auth_client, 1)
    call_command("deliver_webhooks", "--loops", "2", "--interval", "0")
    assert len(receiver.received) == 1


# --------------------------------------------------------------------------------------------
# The endpoints API
# --------------------------------------------------------------------------------------------
def test_the_secret_is_shown_once_and_only_to_its_owner(auth_client, other_client, user):
    created = create_endpoint(auth_client, "https://hooks.example.com/x", event_types=["guard", "divergence"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 49
    assert created["event_types"] == ["divergence", "guard"]
    detail = auth_client.get(f"{WEBHOOKS}{created['id']}/").json()
    assert "secret" not in detail and detail["url"] == "https://hooks.example.com/x"
    assert all("secret" not in row for row in auth_client.get(WEBHOOKS).json()["results"])
    # another user: 404 on read, change and delete; the endpoint is untouched
    url = f"{WEBHOOKS}{created['id']}/"
    assert other_client.get(url).status_code == 404
    assert other_client.patch(url, {"active": False}, format="json").status_code == 404
    assert other_client.delete(url).status_code == 404
    assert other_client.get(WEBHOOKS).json()["results"] == []
    assert WebhookEndpoint.objects.get(pk=created["id"]).active is True
    # the owner can change and delete it
    assert auth_client.patch(url, {"min_level": "failed"}, format="json").json()["min_level"] == "failed"
    assert auth_client.delete(url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/x", "event_types": ["nope"]}, "event_types"),
        ({"url": "https://example.com/x", "min_level": "loud"}, "min_level"),
    ],
)
def test_bad_endpoint_input_is_a_400_with_field_errors_and_nothing_written(auth_client, body, field):
    response = auth_client.post(WEBHOOKS, body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not WebhookEndpoint.objects.exists()


@override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://localhost:8000/x", "http://10.0.0.1/x", "http://[::1]/x"]
)
def test_private_urls_are_refused_in_production(auth_client, url):
    response = auth_client.post(WEBHOOKS, {"url": url}, format="json")
    assert response.status_code == 400 and "url" in response.json()


@override_settings(WEBHOOK_MAX_ENDPOINTS=2)
def test_endpoints_per_user_are_capped(auth_client):
    for i in range(2):
        create_endpoint(auth_client, f"https://example.com/{i}")
    assert auth_client.post(WEBHOOKS, {"url": "https://example.com/3"}, format="json").status_code == 400


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_at_once_never_send_an_event_twice(auth_client, user, receiver):
    # Two worker passes in parallel threads (two deliver_webhooks processes): each endpoint is locked
    # FOR UPDATE SKIP LOCKED while worked on, so every event still reaches each receiver once, in order.
    import threading

    from django.db import connection

    from notifications.tests.test_stream import EURUSD

    second = Receiver().start()
    try:
        create_endpoint(auth_client, receiver.url)
        create_endpoint(auth_client, second.url)
        clock = Clock()
        for i in range(3):
            body = {**sync_payload(broker_time=clock.tick(), positions=[]), "symbols": [EURUSD]}
            assert auth_client.post(SYNC_URL, body, format="json").status_code == 201, i
        event_ids = list(ReconciliationLog.objects.filter(user=user).order_by("pk").values_list("pk", flat=True))

        def work():
            try:
                deliver_due()
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        for r in (receiver, second):
            assert [json.loads(request.body)["id"] for request in r.received] == event_ids
    finally:
        second.stop()


def test_the_admin_lists_deliveries_and_retries_dead_ones(auth_client, user, admin_user, receiver):
    from django.test import Client

    create_endpoint(auth_client, receiver.url, event_types=["sync"])
    post_syncs(auth_client, 1)
    WebhookDelivery.objects.update(status="dead", attempts=10, last_error="HTTP 500")
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/admin/notifications/webhookdelivery/?status__exact=dead")
    assert page.status_code == 200 and "HTTP 500" in page.content.decode()
    assert (
        "whsec_"
        not in admin.get(
            f"/admin/notifications/webhookendpoint/{WebhookEndpoint.objects.get().pk}/change/"
        ).content.decode()
    )
    delivery = WebhookDelivery.objects.get()
    response = admin.post(
        "/admin/notifications/webhookdelivery/", {"action": "retry", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert deliver_due().delivered == 1 and len(receiver.received) == 1
