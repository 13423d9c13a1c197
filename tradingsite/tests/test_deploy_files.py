"""docker-compose.yml, nginx and gunicorn configuration are well formed and wired together.

No Docker engine runs on CI machines, so the compose file is validated by parsing it.
"""

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_declares_the_whole_stack():
    services = compose()["services"]
    assert {"db", "redis", "migrate", "web", "nginx", "locust-master", "locust-worker"} <= set(services)


def test_compose_services_have_healthchecks_and_wait_for_healthy_dependencies():
    services = compose()["services"]
    for name in ("db", "redis", "web", "nginx"):
        assert "healthcheck" in services[name], name
    web_deps = services["web"]["depends_on"]
    assert web_deps["db"]["condition"] == "service_healthy"
    assert web_deps["redis"]["condition"] == "service_healthy"
    assert web_deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_compose_web_tier_scales_behind_nginx():
    services = compose()["services"]
    # web publishes no host port (so --scale web=3 cannot collide); nginx owns host port 8000
    assert "ports" not in services["web"]
    assert services["nginx"]["ports"] == ["8000:80"]
    nginx_conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server web:8000 resolve;" in nginx_conf
    assert "server web-write:8000 resolve;" in nginx_conf
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["nginx"]["volumes"]
    assert "client_max_body_size 1m;" in nginx_conf


def test_compose_wires_the_environment_to_the_backing_services():
    env = compose()["services"]["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["DJANGO_DEBUG"] == "false"
    for required in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"):
        assert env[required].startswith("${" + required + ":?")  # compose refuses to start without them
    db_env = compose()["services"]["db"]["environment"]
    credentials = f"{db_env['POSTGRES_USER']}:{db_env['POSTGRES_PASSWORD']}"
    assert f"{credentials}@db:5432/{db_env['POSTGRES_DB']}" in env["DATABASE_URL"]


def test_compose_locust_workers_point_at_the_master():
    services = compose()["services"]
    assert "--master" in services["locust-master"]["command"]
    worker_command = services["locust-worker"]["command"]
    assert worker_command[worker_command.index("--master-host") + 1] == "locust-master"
    assert "http://nginx" in services["locust-master"]["command"]


def test_nginx_sends_reads_to_the_read_pool_and_every_other_method_to_the_write_pool():
    nginx_conf = (ROOT / "deploy" / "nginx.conf").read_text()
    routing = nginx_conf[nginx_conf.index("map $request_method $tradingsite_pool {") :]
    routing = routing[: routing.index("}")]
    rules = dict(line.split() for line in (raw.strip().rstrip(";") for raw in routing.splitlines()[1:]) if line)
    assert rules == {
        "default": "tradingsite_write",
        "GET": "tradingsite_web",
        "HEAD": "tradingsite_web",
        "OPTIONS": "tradingsite_web",
    }
    assert "proxy_pass http://$tradingsite_pool;" in nginx_conf
    services = compose()["services"]
    write = services["web-write"]
    assert write["command"] == services["web"]["command"]
    assert write["environment"]["GUNICORN_POOL"] == "write"
    assert services["nginx"]["depends_on"]["web-write"]["condition"] == "service_healthy"


def test_gunicorn_config_uses_gthread_and_shm_heartbeat():
    from gunicorn.workers.gthread import ThreadWorker

    from tradingsite.gunicorn_worker import FairThreadWorker

    source = (ROOT / "gunicorn.conf.py").read_text()
    assigned = {
        node.targets[0].id: node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert ast.literal_eval(assigned["worker_class"]) == "tradingsite.gunicorn_worker.FairThreadWorker"
    assert issubclass(FairThreadWorker, ThreadWorker)  # gthread, accepting fairly
    assert ast.literal_eval(assigned["preload_app"]) is False
    assert "/dev/shm" in ast.unparse(assigned["worker_tmp_dir"])
    assert "GUNICORN_BIND" in ast.unparse(assigned["bind"])
