"""demo: commands that drive every app to fill a database with demo data or measure the admin.

``seed_demo`` (demo users and their syncs), ``generate_logs`` (a large reconciliation log) and
``bench_admin`` (the admin pages against that log). The top layer: it may import every app, no app
imports it (pyproject.toml, the import-linter contract).
"""
