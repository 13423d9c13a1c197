"""Accounts: a user's MT5 accounts are separate ledgers (issue 11 "Second account"), named by (server, login),
chosen on every read with ``?account=``, listed at ``GET accounts/``; money keeps the account's digits."""

from datetime import timedelta
from decimal import Decimal as D

import pytest

from accounts.models import Account
from guards.models import EquitySnapshot, GuardState
from positions.models import Quote
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, register, sync_payload, table_counts
from tests.security.conftest import clear_caches

pytestmark = pytest.mark.django_db

ACCOUNTS_URL = "/api/v1/accounts/"
GUARDS_URL = "/api/v1/guards/status/"
STATUS_URL = "/api/v1/reconciliation/status/"
OPEN_URL = "/api/v1/positions/open/"
CONFIG_URL = "/api/v1/guards/config/"


def post(client, payload, status=201):
    response = client.post(SYNC_URL, payload, format="json")
    assert response.status_code == status, response.content[:400]
    return response.json()


def test_a_second_account_is_a_separate_ledger_with_its_own_peak(auth_client, user):
    # given (issue 11 "Second account") the user's JPY account, login 111, at 1,500,000 JPY
    clock = Clock()
    jpy = post(
        auth_client,
        sync_payload(
            broker_time=clock.tick(), positions=[], login=111, server="Broker-Live", currency="JPY",
            balance="1500000", equity="1500000", currency_digits=0,
        ),
    )  # fmt: skip
    # when the same user's USD account, login 222, reports 10,000 USD
    usd = post(
        auth_client,
        sync_payload(
            broker_time=clock.tick(), positions=[], login=222, server="Broker-Live", currency="USD",
            balance="10000.00", equity="10000.00",
        ),
    )  # fmt: skip

    # then two accounts (besides the fixture's empty one), each with its own peak and 0 % drawdown:
    # one guard state per user would give (1,500,000 − 10,000) / 1,500,000 = 99.33 % on the second sync
    first = Account.objects.get(user=user, server="Broker-Live", login=111)
    second = Account.objects.get(user=user, server="Broker-Live", login=222)
    assert (first.currency, first.equity, second.currency, second.equity) == ("JPY", D("1500000"), "USD", D("10000"))
    assert GuardState.objects.get(account=first).peak_equity == D("1500000")
    assert GuardState.objects.get(account=second).peak_equity == D("10000")
    assert jpy["guards"]["drawdown"]["drawdown_pct"] == "0.0000"
    assert usd["guards"]["drawdown"]["drawdown_pct"] == "0.0000"
    assert usd["guards"]["drawdown"]["peak_equity"] == "10000.00"
    # and each account's reads show only its own figures
    for account, equity, currency in ((first, "1500000", "JPY"), (second, "10000.00", "USD")):
        body = auth_client.get(f"{GUARDS_URL}?account={account.pk}").json()
        assert (body["drawdown"]["equity"], body["drawdown"]["level"]) == (equity, "ok")
        assert auth_client.get(f"{OPEN_URL}?account={account.pk}").json()["currency"] == currency
        assert auth_client.get(f"{STATUS_URL}?account={account.pk}").json()["total_syncs"] == 1


def test_several_accounts_without_a_choice_is_a_400_that_lists_them(auth_client, user):
    # given a second account of alice (the fixture's is MetaQuotes-Demo 5021337)
    clock = Clock()
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[]))
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[], login=222, server="Broker-Live"))
    ids = dict(Account.objects.filter(user=user).values_list("login", "pk"))
    # when a read names no account
    for url in (GUARDS_URL, STATUS_URL, OPEN_URL, CONFIG_URL, "/api/v1/positions/", "/api/v1/reconciliation/logs/",
                "/api/v1/guards/alerts/"):  # fmt: skip
        response = auth_client.get(url)
        # then 400, naming each account by id, server, login and currency
        assert response.status_code == 400, url
        message = response.json()["account"][0]
        assert f"id {ids[222]}: Broker-Live login 222 (USD)" in message
        assert f"id {ids[5021337]}: MetaQuotes-Demo login 5021337 (USD)" in message
        # and naming one answers
        assert auth_client.get(f"{url}?account={ids[222]}").status_code == 200, url


def account_scoped_reads() -> list[str]:
    """Every GET list/summary URL of the API whose view takes ``?account=`` (from the URL conf, so a new
    read cannot be left out)."""
    from accounts.api import AccountScopedMixin
    from tests.security.endpoints import api_operations

    return sorted(
        op.path
        for op in api_operations()
        if op.method == "GET"
        and not op.has_path_parameter
        and issubclass(op.view, AccountScopedMixin)
        and op.path not in ACCOUNT_FREE_READS
    )


# Reads of an account-scoped view that are the same for every account: the prop-firm rule presets.
ACCOUNT_FREE_READS = {"/api/v1/guards/rules/presets/"}


def test_every_account_scoped_read_defaults_to_the_single_account_and_400s_with_several(
    auth_client, user, django_capture_on_commit_callbacks
):
    reads = account_scoped_reads()
    # the history reads are among them (equity, pnl/daily, stats), and deals and the loss rules
    for path in ("/api/v1/equity/", "/api/v1/pnl/daily/", "/api/v1/stats/", "/api/v1/deals/",
                 "/api/v1/guards/rules/", GUARDS_URL, STATUS_URL, OPEN_URL):  # fmt: skip
        assert path in reads
    clock = Clock()
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[]))
    (only,) = Account.objects.filter(user=user)
    # given one account: every read answers without ?account= (that account is meant) and with it
    for path in reads:
        assert auth_client.get(path).status_code == 200, path
        assert auth_client.get(path, {"account": only.pk}).status_code == 200, path
    # given a second account (its sync committed: the cached account list is invalidated on commit):
    # without ?account= a 400 on "account" that lists both; with it a 200; an unknown id a 404
    with django_capture_on_commit_callbacks(execute=True):
        post(auth_client, sync_payload(broker_time=clock.tick(), positions=[], login=222, server="Broker-Live"))
    second = Account.objects.get(user=user, login=222)
    clear_caches()  # the hot reads' pages above live API_CACHE_TTL_S (docs/read-api.md): read after it
    for path in reads:
        response = auth_client.get(path)
        assert response.status_code == 400, path
        assert f"id {second.pk}: Broker-Live login 222 (USD)" in response.json()["account"][0], path
        assert auth_client.get(path, {"account": second.pk}).status_code == 200, path
        assert auth_client.get(path, {"account": 999_999_999}).status_code == 404, path
    # GET accounts/ itself lists both and takes no account
    assert sorted(row["login"] for row in auth_client.get(ACCOUNTS_URL).json()) == [222, 5021337]


def test_accounts_lists_the_users_accounts_with_latest_figures(auth_client, other_client, user):
    # given alice's synced account and bob's (same server and login, his own row)
    post(auth_client, sync_payload(broker_time=Clock().tick(), positions=[], balance="10111.00", equity="9876.54"))
    post(other_client, sync_payload(broker_time=Clock().tick(), positions=[], balance="20222.00", equity="20222.00"))
    # when
    body = auth_client.get(ACCOUNTS_URL).json()
    # then only alice's account, with the last sync's balance, equity, currency and a live status
    (row,) = body
    assert row["id"] == Account.objects.get(user=user).pk
    assert (row["server"], row["login"], row["currency"]) == ("MetaQuotes-Demo", 5021337, "USD")
    assert (row["balance"], row["equity"], row["status"]) == ("10111.00", "9876.54", "live")
    assert row["margin_mode"] == "retail_hedging"


@pytest.mark.parametrize("login", [0, -1, 2**63, "9223372036854775808", 1.5, True])
def test_a_login_outside_the_bigint_range_is_a_400_and_writes_nothing(auth_client, login):
    # given a login the BIGINT column cannot hold (issue 15: a login ≥ 2^63 was a 500), or not a login
    payload = sync_payload(broker_time=Clock().tick(), positions=[])
    payload["account"]["login"] = login
    before = table_counts()
    # when / then
    body = post(auth_client, payload, status=400)
    assert "login" in body["account"]
    assert table_counts() == before


def test_the_server_is_required(auth_client):
    payload = sync_payload(broker_time=Clock().tick(), positions=[])
    del payload["account"]["server"]
    assert "server" in post(auth_client, payload, status=400)["account"]


def test_ordering_and_idempotency_are_per_account(auth_client, user):
    # given account A synced at 10:05
    clock = Clock()
    late = clock.tick(300)
    early = late - timedelta(seconds=300)
    first = sync_payload(broker_time=late, positions=[])
    post(auth_client, first)
    # when account B posts an earlier broker time, and then A's sync id again
    post(auth_client, sync_payload(broker_time=early, positions=[], login=222, server="Broker-Live"))
    replay_on_b = sync_payload(
        broker_time=late, positions=[], login=222, server="Broker-Live", sync_id=first["sync_id"]
    )
    # then B's earlier time is accepted (ordering is per account), and A's sync id on B is a new sync
    post(auth_client, replay_on_b, status=201)
    # while A still refuses an older time (409) and replays its own sync id (200)
    post(auth_client, sync_payload(broker_time=early, positions=[]), status=409)
    post(auth_client, first, status=200)
    assert EquitySnapshot.objects.filter(user=user).count() == 3


def test_a_new_account_inherits_nothing(auth_client, user):
    # given alice's first account with a 30 % critical threshold and a 10,000 peak
    clock = Clock()
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[]))
    first = Account.objects.get(user=user, login=5021337)
    auth_client.patch(f"{CONFIG_URL}?account={first.pk}", {"drawdown_critical_pct": "30"}, format="json")
    # when an unseen login reports 8,000 (20 % below the first account's peak)
    body = post(
        auth_client,
        sync_payload(broker_time=clock.tick(), positions=[], login=222, server="Broker-Live", equity="8000.00"),
    )
    # then the new account starts its own peak at max(balance 10,000, equity 8,000) = 10,000 and its own
    # default thresholds (critical 20 %): (10,000 − 8,000) / 10,000 = 20 % → critical, not "warning under 30 %"
    assert body["guards"]["drawdown"]["critical_pct"] == "20.000"
    assert body["guards"]["drawdown"]["level"] == "critical"


def test_money_keeps_the_accounts_currency_digits(auth_client, user):
    # given (issue 11 "Money precision") a BTC-denominated account with 8 currency digits
    payload = sync_payload(
        broker_time=Clock().tick(), positions=[], login=777, server="Crypto-Live", currency="BTC",
        balance="0.12345678", equity="0.123456789", currency_digits=8,
    )  # fmt: skip
    # when
    body = post(auth_client, payload)
    # then 0.12345678 stays 0.12345678 (stored as 0.12 before); the equity is rounded half-up to 8 digits
    account = Account.objects.get(user=user, login=777)
    assert (account.balance, account.equity) == (D("0.12345678"), D("0.12345679"))
    snapshot = EquitySnapshot.objects.get(account=account)
    assert (snapshot.balance, snapshot.equity) == (D("0.12345678"), D("0.12345679"))
    assert body["guards"]["drawdown"]["balance"] == "0.12345678"
    listed = {row["login"]: row for row in auth_client.get(ACCOUNTS_URL).json()}
    assert (listed[777]["balance"], listed[777]["equity"]) == ("0.12345678", "0.12345679")
    guards = auth_client.get(f"{GUARDS_URL}?account={account.pk}").json()
    assert guards["drawdown"]["balance"] == "0.12345678"


def test_a_usd_account_rounds_money_to_cents_where_it_enters(auth_client, user):
    # given a 2-digit account and a balance with more decimals
    post(auth_client, sync_payload(broker_time=Clock().tick(), positions=[], balance="10000.005", equity="9999.994"))
    # then half-up to cents: 10,000.005 → 10,000.01; 9,999.994 → 9,999.99
    account = Account.objects.get(user=user)
    assert (account.balance, account.equity) == (D("10000.01"), D("9999.99"))


def test_two_accounts_keep_their_own_positions_quotes_alerts_and_logs_buy_hedging_sell_netting(auth_client, user):
    # given (issue 11 "Second account", the sell and netting mirror) one user, two accounts on one server,
    # both holding POSITION_IDENTIFIER 1 on EURUSD: login 111 (hedging) a buy, login 222 (netting) a sell
    clock = Clock()
    hedging = {"login": 111, "server": "Broker-Live", "margin_mode": 2}
    netting = {"login": 222, "server": "Broker-Live", "margin_mode": 0}
    register(user, 1, server="Broker-Live", login=111, side="buy")
    register(user, 1, server="Broker-Live", login=222, side="sell")
    buy = broker_position(1, type=0, price_open="1.09500", price_current="1.09600", profit="100")
    sell = broker_position(1, type=1, price_open="1.09500", price_current="1.09400", profit="100")
    for name, position, bid in ((hedging, buy, "1.09600"), (netting, sell, "1.09400")):
        post(auth_client, sync_payload(broker_time=clock.tick(), positions=[position], quotes=[quote("EURUSD", bid)],
                                       equity="10100.00", **name))  # fmt: skip
    # when the netting account's sell closes by its deal (+100.00, balance 10,100) and the hedging account
    # falls 25 %: equity 10,100 → 7,575 (a −2,425 floating loss on the buy)
    close = {"ticket": 502, "position_id": 1, "type": 0, "entry": 1, "reason": 3, "symbol": "EURUSD",
             "volume": "1.00", "price": "1.09400", "profit": "100"}  # fmt: skip
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[], deals=[close], balance="10100.00",
                                   equity="10100.00", quotes=[quote("EURUSD", "1.09410")], **netting))  # fmt: skip
    losing = {**buy, "price_current": "1.07075", "profit": "-2425"}
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[losing], equity="7575.00",
                                   quotes=[quote("EURUSD", "1.07075")], **hedging))  # fmt: skip
    first = Account.objects.get(user=user, login=111)
    second = Account.objects.get(user=user, login=222)

    def read(url, account):
        response = auth_client.get(url, {"account": account.pk})
        assert response.status_code == 200, (url, response.content[:200])
        return response.json()

    # then the buy is still open on 111 and the sell closed on 222 with realized +100.00: same identifier,
    # separate ledgers
    (open_buy,) = read(OPEN_URL, first)["positions"]
    assert (open_buy["side"], open_buy["ticket"]) == ("buy", 1)
    assert read(OPEN_URL, second)["positions"] == []
    closed = read("/api/v1/positions/", second)["results"]
    assert [(row["side"], row["status"], row["realized_pnl"]) for row in closed] == [("sell", "closed", "100.00")]
    # each account's own last quote: 111's drawdown is (10,100 − 7,575) / 10,100 = 25 % (critical, alert
    # opened), 222's is 0 % with no alert
    assert read(GUARDS_URL, first)["drawdown"]["drawdown_pct"] == "25.00"
    assert read(GUARDS_URL, second)["drawdown"]["drawdown_pct"] == "0.00"
    assert len(read("/api/v1/guards/alerts/", first)["results"]) >= 1
    assert read("/api/v1/guards/alerts/", second)["results"] == []
    # each account keeps its own EURUSD quote (the last one it posted)
    assert Quote.objects.get(account=first, symbol="EURUSD").bid == D("1.07075")
    assert Quote.objects.get(account=second, symbol="EURUSD").bid == D("1.09410")
    # and the logs: 111 has its match and the critical drawdown's guard row; 222 its match and its close
    logs = {
        account.login: sorted(row["event_type"] for row in read("/api/v1/reconciliation/logs/", account)["results"])
        for account in (first, second)
    }
    assert [event for event in logs[111] if event != "sync"] == ["guard", "match"]
    assert [event for event in logs[222] if event != "sync"] == ["close", "match"]
