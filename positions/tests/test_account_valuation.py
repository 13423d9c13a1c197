"""Valuation per account through the API (issues 11 and 15): cross rates by currency, instruments per
account, unknown symbols, the broker's side and volume, futures calc modes. Values worked out by hand."""

from decimal import Decimal as D

import pytest

from accounts.models import Account
from guards.models import EquitySnapshot
from positions.models import Position
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, register, sync_payload

pytestmark = pytest.mark.django_db

OPEN_URL = "/api/v1/positions/open/"


def post(client, payload, status=201):
    response = client.post(SYNC_URL, payload, format="json")
    assert response.status_code == status, response.content[:400]
    return response.json()


def spec(name, *, contract="100000", digits=5, point="0.00001", base="EUR", profit="USD", **extra):
    """An MT5 ``symbol_info()`` spec as the worker posts it."""
    return {"name": name, "trade_contract_size": contract, "digits": digits, "point": point,
            "currency_base": base, "currency_profit": profit, **extra}  # fmt: skip


BUY, SELL = 0, 1
HEDGING, NETTING = 2, 0
MODES = [HEDGING, NETTING]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("mt5_type", "price_open"), [(BUY, "149.500"), (SELL, "150.500")])
def test_gbp_account_values_usdjpy_through_usd_with_a_suffixed_pair(auth_client, user, mt5_type, price_open, mode):
    # given (issue 11 "Cross rates and suffixes") a GBP account holding USDJPY 1.00 lot — a buy from 149.500
    # or its mirror, a sell from 150.500 — now at 150.000, quotes USDJPY 150.00 and GBPUSD.r 1.25000 (a
    # broker suffix: matched by its spec's currencies, not its name); hedging and netting alike
    payload = sync_payload(
        broker_time=Clock().tick(), currency="GBP", margin_mode=mode,
        positions=[broker_position(1, symbol="USDJPY", type=mt5_type, price_open=price_open, price_current="150.000")],
        quotes=[quote("USDJPY", "150.000"), quote("GBPUSD.r", "1.25000")],
    )  # fmt: skip
    payload["symbols"] = [spec("GBPUSD.r", base="GBP", profit="USD")]
    post(auth_client, payload)
    # when
    (row,) = auth_client.get(OPEN_URL).json()["positions"]
    # then buy: (150.000 − 149.500) × 1.00 × 100,000 = 50,000 JPY; sell: −(150.000 − 150.500) × 1.00 × 100,000
    # = 50,000 JPY; JPY → USD: 50,000 / 150.000 = 333.333… USD; USD → GBP: 333.333… / 1.25000 = 266.666…
    # → 266.67 GBP
    assert row["unrealized_pnl"] == "266.67"
    assert row["valuation_reason"] is None
    assert row["rate_path"] == [
        {"symbol": "USDJPY", "mid": "150.00000000", "operation": "divide"},
        {"symbol": "GBPUSD.R", "mid": "1.25000000", "operation": "divide"},
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("mt5_type", "price_open", "price_current"), [(BUY, "1950.00", "1960.00"),
                                                                       (SELL, "1960.00", "1950.00")])  # fmt: skip
def test_another_users_spec_never_changes_this_users_numbers(
    auth_client, other_client, user, mt5_type, price_open, price_current, mode
):
    # given (issue 11 "Instruments are global") alice holds XAUUSD 1.00 lot — a buy 1950.00 → 1960.00 or its
    # mirror, a sell 1960.00 → 1950.00 — (shipped spec: 100 oz/lot), on a hedging or a netting account; and
    # bob, on the same trade server name, posts XAUUSD with a 10 oz contract
    alice = sync_payload(
        broker_time=Clock().tick(), margin_mode=mode,
        positions=[broker_position(1, symbol="XAUUSD", type=mt5_type, price_open=price_open,
                                   price_current=price_current)],
    )  # fmt: skip
    post(auth_client, alice)
    bob = sync_payload(broker_time=Clock().tick(), positions=[])
    bob["symbols"] = [spec("XAUUSD", contract="10", digits=2, point="0.01", base="XAU", profit="USD")]
    post(other_client, bob)
    # when
    (row,) = auth_client.get(OPEN_URL).json()["positions"]
    # then buy: (1960.00 − 1950.00) × 1.00 × 100 = 1,000.00 USD; sell: −(1950.00 − 1960.00) × 1.00 × 100
    # = 1,000.00 USD (bob's spec would give 10.00 × 1.00 × 10 = 100.00)
    assert row["unrealized_pnl"] == "1000.00"
    # and bob's own numbers use his spec: his account's row, not the default
    (bob_row,) = [r for r in Account.objects.get(user__username="bob").instruments.all()]
    assert (bob_row.symbol, bob_row.contract_size) == ("XAUUSD", D("10"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("mt5_type", "side"), [(BUY, "buy"), (SELL, "sell")])
def test_a_position_without_a_spec_is_accepted_shown_unvalued_and_the_guards_still_run(
    auth_client, user, mt5_type, side, mode
):
    # given (issue 11 "Unknown symbol") a balance and equity of 10,000, on a hedging or a netting account
    clock = Clock()
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[], margin_mode=mode))
    # when a manual NAS100 buy or sell (no spec anywhere) arrives in the same sync as a 30 % equity drop
    nas = broker_position(9, symbol="NAS100", type=mt5_type, price_open="18250.5", price_current="18100.0")
    body = post(
        auth_client, sync_payload(broker_time=clock.tick(), equity="7000.00", positions=[nas], margin_mode=mode)
    )
    # then the sync is accepted (201, not 400), the drawdown guard saw (10,000 − 7,000) / 10,000 = 30 %
    assert body["guards"]["drawdown"]["drawdown_pct"] == "30.0000"
    assert body["guards"]["drawdown"]["level"] == "critical"
    assert body["guards"]["any_positions_should_close"] is True
    # and the position is stored (unexpected at the broker) and shown unvalued with the reason
    assert Position.objects.get(user=user, ticket=9).divergence_reasons == ["unexpected_at_broker"]
    shown = auth_client.get(OPEN_URL).json()
    (row,) = shown["positions"]
    assert (row["symbol"], row["side"], row["unrealized_pnl"], row["valuation_reason"]) == (
        "NAS100", side, None, "spec_missing"
    )  # fmt: skip
    assert shown["unvalued_positions"] == 1


def test_a_position_without_a_spec_closes_when_the_broker_drops_it(auth_client, user):
    # given a manual NAS100 position
    clock = Clock()
    nas = broker_position(9, symbol="NAS100", price_open="18250.5", price_current="18100.0")
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[nas]))
    # when the broker no longer reports it (no deal): the close is inferred, not a 500
    body = post(auth_client, sync_payload(broker_time=clock.tick(), positions=[]))
    assert body["counts"]["closed"] == 1
    assert Position.objects.get(user=user, ticket=9).status == "closed"


def test_a_partial_fill_is_valued_at_the_brokers_volume(auth_client, user):
    # given (issue 15 "Values use the bot's intent") a registered buy of 1.00 EURUSD at 1.09500, of which
    # the broker filled 0.40; the price is now 1.10000
    register(user, 1, volume="1.00", requested_price="1.09500")
    post(
        auth_client,
        sync_payload(
            broker_time=Clock().tick(),
            positions=[broker_position(1, volume="0.40", price_open="1.09500", price_current="1.10000")],
        ),
    )
    # when
    (row,) = auth_client.get(OPEN_URL).json()["positions"]
    # then 0.00500 × 0.40 × 100,000 = 200.00 USD, as the broker shows (the intent would give 500.00)
    assert (row["volume"], row["broker_volume"], row["unrealized_pnl"]) == ("1.00", "0.40", "200.00")
    assert "partial_fill" in row["divergence_reasons"]


def test_a_side_mismatch_is_valued_on_the_brokers_side(auth_client, user):
    # given a registered buy of 1.00 EURUSD that the broker holds as a sell; the price fell 1.09500 → 1.09400
    register(user, 1, side="buy", volume="1.00", requested_price="1.09500")
    post(
        auth_client,
        sync_payload(
            broker_time=Clock().tick(),
            positions=[broker_position(1, type=1, price_open="1.09500", price_current="1.09400")],
        ),
    )
    # when
    (row,) = auth_client.get(OPEN_URL).json()["positions"]
    # then the sell gains: −1 × (1.09400 − 1.09500) × 1.00 × 100,000 = +100.00 (the intended buy: −100.00)
    assert (row["side"], row["broker_side"], row["unrealized_pnl"]) == ("buy", "sell", "100.00")


def test_a_futures_spec_is_valued_by_tick_value_and_an_unmodelled_mode_is_left_unvalued(auth_client, user):
    # given an exchange futures contract (calc mode 33): tick size 0.25, tick value 12.50 USD, and a bond
    # (calc mode 37) that is not modelled
    payload = sync_payload(
        broker_time=Clock().tick(),
        positions=[
            broker_position(1, symbol="ES", volume="2.00", price_open="5000.00", price_current="5010.50"),
            broker_position(2, symbol="BUND", volume="1.00", price_open="130.00", price_current="131.00"),
        ],
    )
    payload["symbols"] = [
        spec("ES", contract="50", digits=2, point="0.25", base="ES", profit="USD", trade_calc_mode=33,
             trade_tick_value="12.50", trade_tick_size="0.25"),
        spec("BUND", contract="1000", digits=2, point="0.01", base="BUND", profit="USD", trade_calc_mode=37),
    ]  # fmt: skip
    post(auth_client, payload)
    # when
    rows = {row["symbol"]: row for row in auth_client.get(OPEN_URL).json()["positions"]}
    # then ES: (5010.50 − 5000.00) / 0.25 = 42 ticks × 12.50 × 2.00 lots = 1,050.00 USD
    assert rows["ES"]["unrealized_pnl"] == "1050.00"
    # and the bond is shown unvalued with its reason, never guessed
    assert (rows["BUND"]["unrealized_pnl"], rows["BUND"]["valuation_reason"]) == (None, "calc_mode_unsupported")


def test_symbol_specs_belong_to_the_posting_account_only(auth_client, user):
    # given alice's two accounts on the same server; the first posts EURUSD with a 1,000-unit contract
    clock = Clock()
    first = sync_payload(broker_time=clock.tick(), positions=[])
    first["symbols"] = [spec("EURUSD", contract="1000")]
    post(auth_client, first)
    position = broker_position(1, price_open="1.09500", price_current="1.09600")
    post(auth_client, sync_payload(broker_time=clock.tick(), positions=[position], login=222))
    second = Account.objects.get(user=user, login=222)
    # when the second account's position is valued
    (row,) = auth_client.get(f"{OPEN_URL}?account={second.pk}").json()["positions"]
    # then it uses the shipped 100,000-unit contract: 0.00100 × 1.00 × 100,000 = 100.00 USD (not 1.00)
    assert row["unrealized_pnl"] == "100.00"
    assert EquitySnapshot.objects.filter(account=second).count() == 1
