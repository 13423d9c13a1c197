"""House rules checked over the repository's shipped code (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
# The project's own apps, as INSTALLED_APPS lists them (a new app is checked without editing this file).
SHIPPED = tuple(app for app in settings.INSTALLED_APPS if "." not in app and (ROOT / app).is_dir())
# Benchmark commands drive the admin in-process through Django's test client and count its queries.
BENCHMARK_TOOLS = {"demo/management/commands/bench_admin.py", "demo/management/commands/bench_reads.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def shipped_files() -> list[Path]:
    return [
        path
        for package in SHIPPED
        for path in (ROOT / package).rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.parts
    ]


def test_shipped_code_imports_no_test_utilities():
    offenders = {}
    for path in shipped_files():
        relative = str(path.relative_to(ROOT))
        if relative in BENCHMARK_TOOLS:
            continue
        test_imports = {
            name
            for name in imported_modules(path)
            if name == "unittest" or name.startswith(("unittest.", "django.test", "pytest"))
        }
        if test_imports:
            offenders[relative] = sorted(test_imports)
    assert offenders == {}
