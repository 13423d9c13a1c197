# tradingsite tasks. `make help` lists them. CI (.ci/run) and the README call the same commands.
PY ?= .venv/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/tradingsite_dev
REDIS_LOCAL ?= redis://127.0.0.1:6379/0

.PHONY: help run test test-services lint fmt check check-deploy migrations up down bench chaos bench-admin venv

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

## --- Run and test -------------------------------------------------------------------------
run: ## Set up (venv, deps, migrate, demo data) and serve on http://127.0.0.1:8000/ (PORT=8001 make run: another port)
	python3 scripts/dev.py run

test: ## Whole test suite on the embedded default (SQLite + in-process cache)
	python3 scripts/dev.py test

test-services: ## Whole test suite against local PostgreSQL and Redis (service-marked tests must run)
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_LOCAL) REQUIRE_SERVICES=1 python3 scripts/dev.py test

## --- Checks ------------------------------------------------------------------------------
lint: venv ## ruff lint and format check, mypy (django-stubs, djangorestframework-stubs) and the app layer contract (import-linter); config in pyproject.toml
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy . && .venv/bin/lint-imports

fmt: ## ruff format and autofix
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

migrations: venv ## Fail if models changed without a migration
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

check-deploy: venv ## manage.py check --deploy with production settings (warnings fail)
	DJANGO_DEBUG=false DJANGO_SECRET_KEY=$$(python3 -c 'import secrets;print(secrets.token_urlsafe(50))') \
	JWT_SIGNING_KEY=$$(python3 -c 'import secrets;print(secrets.token_urlsafe(50))') \
	DJANGO_ALLOWED_HOSTS=tradingsite.example.com $(PY) manage.py check --deploy --fail-level WARNING

check: lint migrations check-deploy ## All static checks

## --- docker compose (needs a Docker engine) ------------------------------------------------
up: ## PostgreSQL, Redis, 3 web replicas behind nginx on http://localhost:8000/
	docker compose up --build --scale web=3

down: ## Stop the compose stack
	docker compose down

## --- Performance and reliability (PostgreSQL + Redis on this machine) ---------------------------
venv: ## Create/refresh .venv with the runtime, test and load-tool pins
	python3 scripts/dev.py setup --dev

bench: venv ## Benchmark: read + write pools, Locust scenario (data TTL 5 s, 60 s, uncached) + wrk saturation beside a FastAPI peer + 1,000 SSE streams (interleaved runs) + profile (~20 min); table + bench-results/*.json
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) bench/run_benchmark.py

chaos: venv ## Chaos run: Redis stopped, Redis paused, a Redis blip during a sync, PostgreSQL restarted under Locust load (private instances, ~3 min)
	$(PY) bench/chaos.py

bench-admin: venv ## Admin changelist timings on a 1,000,000-row log table (set DATABASE_URL to a scratch PostgreSQL db)
	DJANGO_DEBUG=1 $(PY) manage.py migrate -v0 && DJANGO_DEBUG=1 $(PY) manage.py generate_logs --rows 1000000 --users 100 --seed 1 \
	&& DJANGO_DEBUG=1 $(PY) manage.py bench_admin --repeat 9
