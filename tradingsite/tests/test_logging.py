"""JSON-lines logging: every line is a JSON object carrying the request id."""

import io
import json
import logging
import re

import pytest

from tradingsite.observability import JsonFormatter, RateLimitFilter, RequestContextFilter

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [line for line in stream.getvalue().splitlines() if line.strip()]
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_incoming_request_id_is_honoured_and_returned(client, log_lines):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="trace-abc.123")
    assert response["X-Request-ID"] == "trace-abc.123"
    access = [json.loads(line) for line in log_lines()]
    assert access[-1]["request_id"] == "trace-abc.123"
    assert access[-1]["event"] == "request"
    assert access[-1]["path"] == "/healthz"
    assert access[-1]["status"] == 200
    assert access[-1]["method"] == "GET"
    assert access[-1]["duration_ms"] >= 0


def test_missing_or_malformed_request_id_is_replaced_by_a_generated_one(client, log_lines):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces\nand newline")
    generated = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert json.loads(log_lines()[-1])["request_id"] == generated


def test_every_line_logged_during_a_request_is_json_with_the_request_id(client, log_lines, user, auth_client):
    # given a request that logs from inside the view (an unknown API URL → 404 logged by the access line)
    client.get("/healthz", HTTP_X_REQUEST_ID="r-1")
    auth_client.get("/api/v1/", HTTP_X_REQUEST_ID="r-2")
    lines = log_lines()
    assert lines, "nothing was logged"
    parsed = [json.loads(line) for line in lines]  # raises if any line is not JSON
    assert {entry["request_id"] for entry in parsed} <= {"r-1", "r-2"}
    api_line = [entry for entry in parsed if entry.get("path") == "/api/v1/"][-1]
    assert api_line["user_id"] == str(user.pk)


def test_json_formatter_includes_exception_text_without_breaking_the_line():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "failed x"
    assert "ValueError: boom" in payload["exc"]


def test_rate_limit_filter_lets_one_record_per_interval_through():
    limiter = RateLimitFilter(interval_s=60)
    record = logging.getLogger("t").makeRecord("t", logging.WARNING, __file__, 1, "Exception ignored", (), None)
    results = [limiter.filter(record) for _ in range(50)]
    assert results.count(True) == 1


def test_json_formatter_is_python_json_logger_with_the_fields_the_log_pipeline_reads():
    import uuid
    from datetime import datetime
    from decimal import Decimal

    import pythonjsonlogger.json

    assert issubclass(JsonFormatter, pythonjsonlogger.json.JsonFormatter)
    record = logging.getLogger("t").makeRecord(
        "tradingsite.x", logging.WARNING, __file__, 1, "m %s", ("y",), None, extra={"d": Decimal("1.10")}
    )
    # 1,796,000,000 s = 20,787 days (1,795,996,800 s, 2026-11-30) + 3,200 s (00:53:20), plus 0.25 s
    record.created = 1_796_000_000.25
    sync_id = uuid.UUID(int=7)
    record.sync_id = sync_id
    payload = json.loads(JsonFormatter().format(record))
    # the fields, under the names the log pipeline reads; extras as strings; no request → nulls
    assert payload == {
        "ts": payload["ts"],
        "level": "WARNING",
        "logger": "tradingsite.x",
        "message": "m y",
        "request_id": None,
        "user_id": None,
        "d": "1.10",
        "sync_id": str(sync_id),
    }
    assert datetime.fromisoformat(payload["ts"]) == datetime.fromisoformat("2026-11-30T00:53:20.250000+00:00")
