"""``scripts/dev.py run``: the port comes from ``--port`` or ``PORT`` (it was fixed at 8000)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dev.py"


@pytest.fixture
def dev(monkeypatch):
    """scripts/dev.py loaded as a module, with every side effect of ``run`` recorded instead of done."""
    spec = importlib.util.spec_from_file_location("dev_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "ensure_venv", lambda requirements: None)
    monkeypatch.setattr(module, "ensure_dotenv", lambda: None)
    monkeypatch.setattr(module, "manage", lambda *args: calls.append(("manage", args)))
    monkeypatch.setattr(module.os, "chdir", lambda path: None)
    monkeypatch.setattr(module.os, "execv", lambda path, args: calls.append(("execv", args[1:])))
    monkeypatch.delenv("PORT", raising=False)
    module.calls = calls
    return module


def served_on(dev) -> str:
    (execv,) = [args for kind, args in dev.calls if kind == "execv"]
    assert execv[:2] == ["manage.py", "runserver"]
    return execv[2]


def test_run_serves_on_8000_by_default(dev):
    dev.run([])
    assert served_on(dev) == "127.0.0.1:8000"


@pytest.mark.parametrize("argv", [["--port", "8123"], ["--port=8123"], ["--users", "3", "--port", "8123"]])
def test_run_takes_the_port_from_the_command_line(dev, argv):
    dev.run(argv)
    assert served_on(dev) == "127.0.0.1:8123"


def test_run_takes_the_port_from_the_environment_and_the_option_wins(dev, monkeypatch):
    monkeypatch.setenv("PORT", "9001")
    dev.run(["--users", "3"])
    assert served_on(dev) == "127.0.0.1:9001"
    assert ("manage", ("seed_demo", "--users", "3")) in dev.calls
    dev.calls.clear()
    dev.run(["--port", "9002"])
    assert served_on(dev) == "127.0.0.1:9002"


@pytest.mark.parametrize("bad", ["0", "65536", "http", "-1"])
def test_a_bad_port_stops_before_anything_runs(dev, bad):
    with pytest.raises(SystemExit, match="port must be a number from 1 to 65535"):
        dev.run(["--port", bad])
    assert dev.calls == []


def test_the_locust_docs_say_to_install_the_dev_requirements_first():
    root = SCRIPT.parents[1]
    section = (root / "docs" / "performance.md").read_text().split("## Locust on its own", 1)[1]
    assert section.index("python3 scripts/dev.py setup --dev") < section.index(".venv/bin/locust")
    docstring = (root / "locustfile.py").read_text().split('"""')[1]
    assert docstring.index("python3 scripts/dev.py setup --dev") < docstring.index("locust -f locustfile.py")
