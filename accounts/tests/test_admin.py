"""The account admin: an operator's edit writes only the fields the operator changed, never the synced figures."""

from decimal import Decimal as D
from unittest import mock

import pytest
from django.urls import reverse

from accounts.admin import AccountAdmin
from accounts.models import Account
from accounts.tests.factories import default_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _form_data(account: Account, **changes) -> dict:
    editable = ("name", "company", "currency_digits", "margin_mode", "leverage", "server_utc_offset")
    data = {field: getattr(account, field) for field in editable}
    data["leverage"] = data["leverage"] or ""
    return {**data, **changes}


def test_an_operators_edit_does_not_overwrite_a_sync_that_committed_after_the_admin_read_the_row(operator_client, user):
    # given an account the admin reads (balance 10,000.00 after 5 syncs) ...
    account = default_account(user)
    Account.objects.filter(pk=account.pk).update(balance=D("10000.00"), equity=D("10000.00"), sync_count=5)
    read_by_admin = AccountAdmin.get_object

    def get_object_then_a_sync_commits(self, request, object_id, from_field=None):
        obj = read_by_admin(self, request, object_id, from_field)
        if request.method == "POST":
            # ... and a sync commits between the admin's read and its save: balance 10,250.00, 6 syncs
            Account.objects.filter(pk=account.pk).update(balance=D("10250.00"), equity=D("10260.00"), sync_count=6)
        return obj

    url = reverse("admin:accounts_account_change", args=[account.pk])
    with mock.patch.object(AccountAdmin, "get_object", get_object_then_a_sync_commits):
        response = operator_client.post(url, _form_data(account, server_utc_offset=120))

    # then the operator's change is saved and the sync's figures survive it (a full-row save wrote back
    # the 10,000.00 / 5 the admin had read)
    assert response.status_code == 302, response.content[:500]
    account.refresh_from_db()
    assert account.server_utc_offset == 120
    assert (account.balance, account.equity, account.sync_count) == (D("10250.00"), D("10260.00"), 6)


def test_a_save_without_changes_writes_nothing(operator_client, user):
    account = default_account(user)
    before = Account.objects.values("updated_at").get(pk=account.pk)["updated_at"]
    url = reverse("admin:accounts_account_change", args=[account.pk])
    response = operator_client.post(url, _form_data(account))
    assert response.status_code == 302
    assert Account.objects.values("updated_at").get(pk=account.pk)["updated_at"] == before
