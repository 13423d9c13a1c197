#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path


def main() -> None:
    """Run administrative tasks with tradingsite.settings unless told otherwise.

    A checkout with no configuration at all (no DJANGO_DEBUG, no DJANGO_SECRET_KEY, no .env) is a
    developer's machine: management commands then use the development defaults (DEBUG on, the
    embedded SQLite + in-process cache). Production always sets its keys, so it is never affected,
    and gunicorn (tradingsite.wsgi) never takes this shortcut: it refuses to start unconfigured.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    unconfigured = not any(name in os.environ for name in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY"))
    if unconfigured and not (Path(__file__).resolve().parent / ".env").exists():
        os.environ["DJANGO_DEBUG"] = "true"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
