"""``manage.py mint_tokens``: write JWT access + refresh tokens for N users to a JSON file.

Load generators (``locustfile.py``, ``bench/wrk/rotate_tokens.lua``) read the file instead of
logging in through ``auth/token/``: Django's PBKDF2 hasher (1,000,000 iterations) makes a login
cost hundreds of milliseconds of CPU, and 100 logins during ramp-up would pollute the measured
percentiles. The tokens are ordinary SimpleJWT tokens signed with
``JWT_SIGNING_KEY``; only the access lifetime differs, so one token outlives a whole run.

Output (``--output``, default ``bench-results/locust-tokens.json``, a git-ignored folder)::

    {"generated_at": "2026-11-30T10:00:00+00:00", "access_lifetime_s": 7200,
     "users": [{"username": "demo001", "user_id": 1, "accounts": [1], "access": "eyJ...", "refresh": "eyJ..."},
               ...]}

``accounts`` lists the user's account ids: a read of a user with several needs ``?account=``.

Users are ``<prefix>001`` … ``<prefix>NNN`` (the ``seed_demo`` naming) unless ``--usernames`` lists
them. A missing or inactive user is an error: nothing is written.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework_simplejwt.tokens import RefreshToken


def demo_usernames(count: int, prefix: str = "demo") -> list[str]:
    """Return ``[prefix001, prefix002, …]`` for ``count`` users (at least three digits)."""
    return [f"{prefix}{index:03d}" for index in range(1, count + 1)]


class Command(BaseCommand):
    help = "Write access + refresh JWTs for N demo users to a JSON file (for Locust and wrk)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=100, help="Number of users: <prefix>001 … (default 100).")
        parser.add_argument("--prefix", default="demo", help="Username prefix (default demo).")
        parser.add_argument("--usernames", default="", help="Comma-separated usernames (overrides --users/--prefix).")
        parser.add_argument("--output", default="bench-results/locust-tokens.json", help="JSON file to write.")
        parser.add_argument(
            "--access-lifetime-s",
            type=int,
            default=7200,
            help="Access token lifetime in seconds; longer than the run so no refresh happens mid-measurement.",
        )

    def handle(self, *args, **options):
        lifetime_s = options["access_lifetime_s"]
        if lifetime_s <= 0:
            raise CommandError("--access-lifetime-s must be positive.")
        if options["usernames"]:
            usernames = [name.strip() for name in options["usernames"].split(",") if name.strip()]
        else:
            if options["users"] <= 0:
                raise CommandError("--users must be positive.")
            usernames = demo_usernames(options["users"], options["prefix"])

        users = {user.username: user for user in get_user_model().objects.filter(username__in=usernames)}
        missing = [name for name in usernames if name not in users]
        inactive = [name for name in usernames if name in users and not users[name].is_active]
        if missing or inactive:
            raise CommandError(
                f"missing users: {', '.join(missing[:10]) or '-'}; inactive users: {', '.join(inactive[:10]) or '-'}"
                " (create them first, e.g. manage.py seed_demo --users N)"
            )

        from django.apps import apps  # the accounts app, by name: tradingsite imports no app above it

        account_ids: dict[int, list[int]] = {}
        for user_id, account_id in (
            apps.get_model("accounts", "Account").objects.order_by("user_id", "id").values_list("user_id", "id")
        ):
            account_ids.setdefault(user_id, []).append(account_id)
        entries = []
        for name in usernames:
            refresh = RefreshToken.for_user(users[name])
            access = refresh.access_token
            access.set_exp(lifetime=timedelta(seconds=lifetime_s))
            entries.append(
                {
                    "username": name,
                    "user_id": users[name].pk,
                    "accounts": account_ids.get(users[name].pk, []),
                    "access": str(access),
                    "refresh": str(refresh),
                }
            )

        document = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "access_lifetime_s": lifetime_s,
            "users": entries,
        }
        path = Path(options["output"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(document, indent=1))
        os.replace(tmp, path)  # readers never see a half-written file
        self.stdout.write(f"wrote {len(entries)} token pairs (access lifetime {lifetime_s} s) to {path}")
