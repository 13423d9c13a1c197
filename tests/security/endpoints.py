"""Every API operation of the URL conf, and how the security tests call one.

The tests take their list of operations from here, never from a hand-written list alone: each test
module keeps a table keyed by :func:`api_operations` and fails when the URL conf has an operation
the table does not classify, so a new endpoint cannot be left out of the security tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rest_framework.permissions import AllowAny

API_PREFIX = "/api/v1/"


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the API, e.g. ``("GET", "/api/v1/positions/{pk}/")``."""

    method: str
    path: str
    view: Any

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def is_public(self) -> bool:
        """True for views that allow anonymous callers (the auth endpoints and the API root): no permission
        class at all (SimpleJWT's views) or ``AllowAny``."""
        permissions = list(getattr(self.view, "permission_classes", None) or [])
        return not permissions or AllowAny in permissions

    @property
    def has_path_parameter(self) -> bool:
        return "{" in self.path

    def url(self, **params: Any) -> str:
        """The path with its ``{name}`` parameters filled from ``params`` (default 1)."""
        return re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1), params.get("id", 1))), self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def api_operations() -> list[Operation]:
    """Every (method, path) under ``/api/v1/`` in the URL conf, as DRF's schema enumerator sees it.

    Uses drf-spectacular's ``EndpointEnumerator`` (the one that builds ``/api/schema/``) on the live
    URL conf, so it also lists views excluded from the schema. HEAD/OPTIONS are left out.
    """
    from drf_spectacular.generators import EndpointEnumerator

    operations = {}
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        if path.startswith(API_PREFIX):
            operations[(method, path)] = Operation(method=method, path=path, view=callback.cls)
    return [operations[key] for key in sorted(operations)]


def send(client, operation: Operation, *, url: str | None = None, data: Any = None, **extra: Any):
    """Send ``operation`` with ``client`` (an APIClient) as JSON; ``data`` is the body of POST/PUT/PATCH."""
    method = operation.method.lower()
    target = url or operation.url()
    if method in ("post", "put", "patch"):
        return getattr(client, method)(target, data if data is not None else {}, format="json", **extra)
    return getattr(client, method)(target, **extra)
