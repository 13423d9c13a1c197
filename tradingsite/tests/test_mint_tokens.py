"""manage.py mint_tokens: valid SimpleJWT pairs for the demo users, with the requested access lifetime."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tradingsite.management.commands.mint_tokens import demo_usernames

pytestmark = pytest.mark.django_db


def test_demo_usernames_follow_the_seed_naming():
    assert demo_usernames(3) == ["demo001", "demo002", "demo003"]
    assert demo_usernames(1, "load") == ["load001"]


def test_mint_tokens_writes_a_valid_pair_per_user(django_user_model, tmp_path):
    # given two demo users
    first = django_user_model.objects.create_user(username="demo001", password="x")
    second = django_user_model.objects.create_user(username="demo002", password="x")
    output = tmp_path / "tokens.json"
    # when
    call_command("mint_tokens", users=2, output=str(output), access_lifetime_s=7200)
    # then each entry carries a signed access token of that user, valid for exactly 7200 s
    document = json.loads(output.read_text())
    assert document["access_lifetime_s"] == 7200
    assert [e["username"] for e in document["users"]] == ["demo001", "demo002"]
    for entry, user in zip(document["users"], (first, second), strict=True):
        access = AccessToken(entry["access"])  # verifies signature (JWT_SIGNING_KEY) and expiry
        assert access["user_id"] == str(user.pk)  # SimpleJWT 5.5 writes the claim as a string
        assert entry["user_id"] == user.pk
        assert access["exp"] - access["iat"] == 7200
        refresh = RefreshToken(entry["refresh"])
        assert refresh["user_id"] == access["user_id"]


def test_mint_tokens_lists_each_users_accounts_so_load_tools_can_skip_or_name_them(django_user_model, tmp_path):
    from accounts.models import Account

    # given demo001 with no account yet and demo002 holding two (a read of demo002 needs ?account=)
    django_user_model.objects.create_user(username="demo001", password="x")
    second = django_user_model.objects.create_user(username="demo002", password="x")
    usd = Account.objects.create(user=second, server="Broker-Demo", login=111, currency="USD")
    eur = Account.objects.create(user=second, server="Broker-Demo", login=222, currency="EUR")
    output = tmp_path / "tokens.json"
    call_command("mint_tokens", users=2, output=str(output))
    document = json.loads(output.read_text())
    assert [(e["username"], e["accounts"]) for e in document["users"]] == [
        ("demo001", []),
        ("demo002", [usd.pk, eur.pk]),
    ]


def test_mint_tokens_refuses_missing_or_inactive_users_and_writes_nothing(django_user_model, tmp_path):
    django_user_model.objects.create_user(username="demo001", password="x")
    django_user_model.objects.create_user(username="demo002", password="x", is_active=False)
    output = tmp_path / "tokens.json"
    with pytest.raises(CommandError, match="missing users: demo003; inactive users: demo002"):
        call_command("mint_tokens", users=3, output=str(output))
    assert not output.exists()
