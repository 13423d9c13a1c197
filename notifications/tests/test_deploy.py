"""The event stream is served by its own ASGI server (uvicorn) behind nginx; the webhook worker runs."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_stream_route_goes_to_uvicorn_unbuffered():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    stream = services["stream"]
    assert stream["command"][:2] == ["uvicorn", "tradingsite.asgi:application"]
    assert "ports" not in stream and "healthcheck" in stream
    assert services["nginx"]["depends_on"]["stream"]["condition"] == "service_healthy"
    assert services["webhooks"]["command"][:3] == ["python", "manage.py", "deliver_webhooks"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    route = nginx[nginx.index("location = /api/v1/events/stream/") :]
    route = route[: route.index("}")]
    assert "proxy_pass http://tradingsite_stream;" in route
    assert "proxy_buffering off;" in route
    assert "server stream:8001 resolve;" in nginx
    # uvicorn is pinned with the runtime dependencies
    assert "uvicorn==" in (ROOT / "requirements.txt").read_text()
