"""The log's columns are declared once (reconciliation.models.LOG_FIELDS) and every listing shows them all."""

from __future__ import annotations

from demo.management.commands.generate_logs import COLUMNS as COPY_COLUMNS
from reconciliation.admin import CSV_COLUMNS, ReconciliationLogAdmin
from reconciliation.models import LOG_FIELDS, ReconciliationLog
from reconciliation.serializers import ReconciliationLogSerializer

KEYS = {"id", "user", "account", "position", "created_at"}


def test_the_declaration_names_every_recorded_column_of_the_model_once():
    columns = [field.name for field in ReconciliationLog._meta.concrete_fields]
    assert len(LOG_FIELDS) == len(set(LOG_FIELDS))
    assert set(LOG_FIELDS) == set(columns) - KEYS  # a new model column must be declared


def test_the_api_the_admin_the_csv_and_generate_logs_show_every_declared_column_in_order():
    def in_order(names) -> list[str]:
        return [name for name in names if name in LOG_FIELDS]

    assert in_order(ReconciliationLogSerializer.Meta.fields) == list(LOG_FIELDS)
    assert in_order(name for _header, name in CSV_COLUMNS) == list(LOG_FIELDS)
    assert in_order(COPY_COLUMNS) == list(LOG_FIELDS)
    shown = {name for _title, options in ReconciliationLogAdmin.fieldsets for name in options["fields"]}
    # the admin's detail page shows every column; details as a table and as JSON (details_table, details_json)
    assert set(LOG_FIELDS) - shown == {"details"}
    assert {"details_table", "details_json"} <= shown
    assert set(ReconciliationLogAdmin.readonly_fields) == shown
