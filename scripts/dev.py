#!/usr/bin/env python3
"""One-command set-up for tradingsite on a machine with only Python 3.11+.

    python3 scripts/dev.py run     # venv + pinned deps + migrate + demo data + serve on http://127.0.0.1:8000/
    python3 scripts/dev.py run --port 8001   # another port (or PORT=8001 in the environment)
    python3 scripts/dev.py test    # venv + pinned deps (incl. test tools) + the whole test suite

Both are idempotent: the virtual environment is reused (requirements are reinstalled only when
they change), migrations and demo data are applied only once. ``run`` writes a ``.env`` with
DJANGO_DEBUG=true and random keys on first use (the embedded default: SQLite + in-process cache);
set DATABASE_URL / REDIS_URL in the environment or in .env to use your own PostgreSQL / Redis.
Extra arguments after ``test`` go to pytest; after ``run``, ``--users N`` sets the demo users and
``--port N`` the port (default: the ``PORT`` environment variable, else 8000).
``python3 scripts/dev.py setup [--dev]`` only prepares the virtual environment (used by make targets).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def ensure_python() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run (and explain) on older Pythons
        sys.exit(f"tradingsite needs Python 3.11 or newer (this is {sys.version.split()[0]}).")


def ensure_venv(requirements: str) -> None:
    """Create .venv if needed and install ``requirements`` when its pins changed since the last install."""
    if not PYTHON.exists():
        say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    req_files = [ROOT / "requirements.txt"] + ([ROOT / requirements] if requirements != "requirements.txt" else [])
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in req_files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing pinned packages from {requirements}")
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "-r", ROOT / requirements], check=True)
    stamp.write_text(digest)


def ensure_dotenv() -> None:
    """Write a development .env (DEBUG on, random keys) unless one exists."""
    env_file = ROOT / ".env"
    if env_file.exists():
        return
    say("writing .env for local development (DEBUG on, random keys; SQLite + in-process cache)")
    env_file.write_text(
        "# Written by scripts/dev.py for local development; see .env.example for every variable.\n"
        "DJANGO_DEBUG=true\n"
        f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"JWT_SIGNING_KEY={secrets.token_urlsafe(50)}\n"
        "DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1,[::1]\n"
        "DJANGO_SECURE_SSL_REDIRECT=false\n"
    )


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def option(argv: list[str], name: str, default: str) -> str:
    """The value after ``name`` in ``argv`` (``--port 8001`` or ``--port=8001``), else ``default``."""
    for index, arg in enumerate(argv):
        if arg == name:
            if index + 1 >= len(argv):
                sys.exit(f"{name} needs a value")
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def port_number(value: str) -> int:
    """``value`` as a TCP port (1–65535), or exit with a clear message."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        sys.exit(f"port must be a number from 1 to 65535, not {value!r}")
    return int(value)


def run(argv: list[str]) -> None:
    users = option(argv, "--users", os.environ.get("DEMO_USERS", "100"))
    port = port_number(option(argv, "--port", os.environ.get("PORT", "8000")))
    ensure_venv("requirements.txt")
    ensure_dotenv()
    say("applying migrations")
    manage("migrate", "--noinput", "-v", "0")
    say(f"loading demo data ({users} users; skipped for users that already have it)")
    manage("seed_demo", "--users", users)
    say(f"starting the service on http://127.0.0.1:{port}/ (API root /api/v1/, admin /admin/, docs /api/docs/)")
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "manage.py", "runserver", f"127.0.0.1:{port}"])


def test(argv: list[str]) -> None:
    ensure_venv("requirements-dev.txt")
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "-m", "pytest", *argv])


def setup(argv: list[str]) -> None:
    """Only create/refresh the virtual environment (``--dev`` adds the test and load tools)."""
    ensure_venv("requirements-dev.txt" if "--dev" in argv else "requirements.txt")


def main() -> None:
    ensure_python()
    commands = {"run": run, "test": test, "setup": setup}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
