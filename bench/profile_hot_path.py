#!/usr/bin/env python
"""Profile the hot path in-process: the full Django stack (middleware, DRF, JWT, caches, ORM) without gunicorn.

Run with the service's environment (``bench/run_benchmark.py`` does it against its database)::

    DJANGO_SETTINGS_MODULE=tradingsite.settings DATABASE_URL=... REDIS_URL=... DJANGO_SECRET_KEY=... \\
      JWT_SIGNING_KEY=... DJANGO_ALLOWED_HOSTS=127.0.0.1 python bench/profile_hot_path.py --out bench-results/x

For each of the three hot endpoints it times requests on one thread — page-cache hits (answers that
carry ``Age``, each user's page warmed just before) and, with ``API_CACHE_TTL_S`` forced to 0, full
misses — in wall time and in CPU time of this process; 1 s / CPU time per request is the requests/s one core can
serve (Redis and PostgreSQL work is not included: they run in their own processes). Then it profiles the same loops
with pyinstrument and writes ``profile-hit.txt`` / ``profile-miss.txt`` (call tree, then the functions
by self time) to ``--out``.
Tokens are minted in-process for the seeded users, so the script needs no tokens file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOT_PATHS = ("/api/v1/reconciliation/status/", "/api/v1/positions/open/", "/api/v1/guards/status/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--requests", type=int, default=500, help="timed hits per endpoint (misses: a fifth)")
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from django.db.models import Count
    from pyinstrument import Profiler
    from rest_framework_simplejwt.tokens import AccessToken

    # Users holding exactly one account: a read without ?account= is a 400 "choose one" for the others
    # (seed_demo gives demo004 two accounts), as the saturation phase's token list does.
    users = list(
        get_user_model()
        .objects.filter(username__startswith="demo")
        .annotate(accounts_held=Count("accounts"))
        .filter(accounts_held=1)
        .order_by("username")[: args.users]
    )
    if not users:
        raise SystemExit("no demo users: run seed_demo first")
    tokens = [str(AccessToken.for_user(user)) for user in users]
    handler = WSGIHandler()
    host = (settings.ALLOWED_HOSTS or ["127.0.0.1"])[0]

    def call(path: str, token: str) -> tuple[bool, float, float]:
        """One in-process request: (answered from the page cache, wall seconds, CPU seconds)."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": host,
            "SERVER_PORT": "80",
            "HTTP_HOST": host,
            "HTTP_ACCEPT": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        started = (time.perf_counter(), time.process_time())
        captured: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers))

        body = handler(environ, start_response)
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
        wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
        status, headers = captured[0]
        if not status.startswith("200"):  # /healthz included
            raise SystemExit(f"{path} answered {status}")
        page_hit = any(name.lower() == "age" for name, _value in headers)  # cache_page sets Age on hits only
        return page_hit, wall, cpu

    def loop(path: str, count: int, samples: dict | None = None) -> None:
        """``count`` requests over the users in turn; record (wall, cpu) per request by hit/miss."""
        for i in range(count):
            page_hit, wall, cpu = call(path, tokens[i % len(tokens)])
            if samples is not None:
                samples["hit" if page_hit else "miss"].append((wall, cpu))

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    ttl = settings.API_CACHE_TTL_S
    for mode in ("hit", "miss"):
        settings.API_CACHE_TTL_S = ttl if mode == "hit" else 0
        figures[mode] = {}
        profiler = Profiler(interval=0.0002)
        for path in HOT_PATHS:
            wanted = args.requests if mode == "hit" else max(60, args.requests // 5)
            samples: dict[str, list] = {"hit": [], "miss": []}
            passes = 0
            while len(samples[mode]) < wanted and passes < 50:
                batch = min(len(tokens), wanted - len(samples[mode]))
                if mode == "hit":
                    loop(path, batch)  # warm: these users' pages are cached now
                loop(path, batch, samples)  # timed; in hit mode only answers carrying Age count
                passes += 1
            timed = samples[mode]
            figures[mode][path] = {
                "wall_us": sum(w for w, _c in timed) / len(timed) * 1e6 if timed else None,
                "cpu_us": sum(c for _w, c in timed) / len(timed) * 1e6 if timed else None,
                "requests": len(timed),
            }
            if mode == "hit":
                loop(path, min(len(tokens), 50))
            profiler.start()  # sessions of one Profiler add up across start/stop
            loop(path, min(len(tokens), 50) * (3 if mode == "hit" else 1))
            profiler.stop()
        (out_dir / f"profile-{mode}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False)
            + "\n\nFlat (self time per function):\n"
            + "\n".join(profiler.output_text(unicode=True, flat=True).splitlines()[:60])
        )
    settings.API_CACHE_TTL_S = ttl
    floor: dict[str, list] = {"hit": [], "miss": []}
    loop("/healthz", 50)
    loop("/healthz", args.requests, floor)
    timed = floor["miss"]  # /healthz is never cached: no Age header
    figures["floor"] = {
        "/healthz": {
            "wall_us": sum(w for w, _c in timed) / len(timed) * 1e6,
            "cpu_us": sum(c for _w, c in timed) / len(timed) * 1e6,
            "requests": len(timed),
        }
    }
    summary = {
        mode: {
            path: {
                "requests": row["requests"],
                "wall_us_per_request": round(row["wall_us"], 1) if row["wall_us"] else None,
                "cpu_us_per_request": round(row["cpu_us"], 1) if row["cpu_us"] else None,
                "requests_per_s_per_core": round(1e6 / row["cpu_us"]) if row["cpu_us"] else None,
            }
            for path, row in rows.items()
        }
        for mode, rows in figures.items()
    }
    (out_dir / "profile-summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
