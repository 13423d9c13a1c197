"""Settings come from the environment: backends, production refusals, deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import django, json; from django.conf import settings; django.setup(); "
    "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], "
    "'cache': settings.CACHES['default']['BACKEND'], 'ttl': settings.API_CACHE_TTL_S, "
    "'ssl_redirect': settings.SECURE_SSL_REDIRECT, 'proxy': settings.SECURE_PROXY_SSL_HEADER, "
    "'timeout': settings.CACHES['default'].get('OPTIONS', {}).get('SOCKET_TIMEOUT'), "
    "'ignore': settings.CACHES['default'].get('OPTIONS', {}).get('IGNORE_EXCEPTIONS'), "
    "'jwt_key_differs': settings.SIMPLE_JWT['SIGNING_KEY'] != settings.SECRET_KEY}))"
)
# Variables the test settings or CI set, which must not leak into the production settings probed here.
SERVICE_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "API_CACHE_TTL_S",
    "API_DATA_TTL_S",
    "JWT_SIGNING_KEY",
    "REDIS_SOCKET_TIMEOUT_S",
)
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k3Yq9-tradingsite-test-secret-Zp7wR2mX4vB8nC1dF6gH0jL5sT",
    "JWT_SIGNING_KEY": "Jw7-tradingsite-test-jwt-key-Qa2Ws3Ed4Rf5Tg6Yh7Uj8Ik9Ol0P",
    "DJANGO_ALLOWED_HOSTS": "tradingsite.example.com",
}


def run_with_env(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS and not k.startswith("DJANGO_")}
    # DJANGO_DOTENV=off: a developer's local .env (written by `dev.py run`) must not leak into these settings.
    clean.update(env, DJANGO_SETTINGS_MODULE="tradingsite.settings", DJANGO_DOTENV="off")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def probe(**env: str) -> dict:
    import json

    result = run_with_env(PROBE, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_settings_default_to_sqlite_and_in_process_cache():
    # given no DATABASE_URL / REDIS_URL, when the settings load, then the embedded default is used
    config = probe(DJANGO_DEBUG="true")
    assert config["db"] == "django.db.backends.sqlite3"
    assert config["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert config["ttl"] == 5
    assert config["jwt_key_differs"] is True


def test_settings_select_postgresql_and_django_redis_from_the_environment():
    config = probe(
        DJANGO_DEBUG="true",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/anything",
        REDIS_URL="redis://127.0.0.1:6379/3",
        API_CACHE_TTL_S="7",
    )
    assert config["db"] == "django.db.backends.postgresql"
    assert config["cache"] == "django_redis.cache.RedisCache"
    assert config["timeout"] == 0.1
    assert config["ignore"] is True
    assert config["ttl"] == 7


def test_production_settings_redirect_to_https_behind_the_proxy_by_default():
    config = probe(**PRODUCTION)
    assert config["ssl_redirect"] is True
    assert config["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "JWT_SIGNING_KEY"])
def test_production_settings_refuse_to_start_without_a_required_value(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = run_with_env(PROBE, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = run_with_env(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


STATIC_PROBE = """
import django, json
django.setup()
from django.test import Client
client, out = Client(), {}
for path in ("/admin/login/", "/api/v1/", "/static/admin/css/base.css", "/static/rest_framework/css/default.css"):
    response = client.get(path, HTTP_HOST="tradingsite.example.com", HTTP_ACCEPT="text/html", secure=True)
    body = b"".join(response) if response.streaming else response.content
    out[path] = {"status": response.status_code, "body": body.decode("utf-8", "replace")}
print(json.dumps(out))
"""


def test_production_settings_without_collectstatic_serve_pages_and_static_files(tmp_path):
    # given production settings and an empty STATIC_ROOT (collectstatic never ran)
    result = run_with_env(STATIC_PROBE, **PRODUCTION, DJANGO_STATIC_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    pages = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    # then the admin and the browsable API render (they were a 500: the manifest storage raised ValueError) ...
    assert pages["/admin/login/"]["status"] == 200
    assert pages["/api/v1/"]["status"] == 200
    # ... linking the unhashed names, which whitenoise serves from the apps' static/ directories
    assert 'href="/static/admin/css/base.css"' in pages["/admin/login/"]["body"]
    assert pages["/static/admin/css/base.css"]["status"] == 200
    assert "body" in pages["/static/admin/css/base.css"]["body"]  # the stylesheet itself
    assert pages["/static/rest_framework/css/default.css"]["status"] == 200
    assert "static file admin/" in result.stderr + result.stdout  # and it says so once in the log


def test_api_users_see_descriptions_without_restructuredtext_markup(client, django_user_model):
    # given a docstring written for maintainers (roles and double-backquoted literals)
    from tradingsite.schema import plain_text

    assert plain_text("See :func:`guards.selectors.guard_status` and ``?account=``.") == (
        "See guards.selectors.guard_status and `?account=`."
    )
    # then neither the OpenAPI schema nor the browsable API shows that markup
    schema = client.get("/api/schema/?format=json").content.decode()
    assert "``" not in schema and ":func:`" not in schema and ":class:`" not in schema
    django_user_model.objects.create_user(username="reader", password="pw-reader-2026")
    client.login(username="reader", password="pw-reader-2026")
    page = client.get("/api/v1/accounts/", HTTP_ACCEPT="text/html").content.decode()
    assert "``" not in page and ":func:`" not in page
