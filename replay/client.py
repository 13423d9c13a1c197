"""tradingsite over HTTP with a JWT, as a sync worker talks to it (standard library only).

One keep-alive ``http.client`` connection; the access token is refreshed through ``auth/token/refresh/``
(rotating: the new refresh token replaces the old) ``refresh_margin_s`` before its ``exp``, and after a 401;
if the refresh is refused the client logs in again. A 429 waits for ``Retry-After`` and retries; a dropped
connection is reopened and the request retried (a sync is idempotent by its ``sync_id``).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urljoin, urlsplit

API = "/api/v1/"


class ApiError(RuntimeError):
    """A response the worker cannot continue from: method, path, status and the JSON (or text) body."""

    def __init__(self, method: str, path: str, status: int, body) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        text = json.dumps(body)[:2000] if not isinstance(body, str) else body[:2000]
        super().__init__(f"{method} {path} → HTTP {status}: {text}")


def jwt_expiry(token: str) -> float:
    """Return the ``exp`` claim (epoch seconds) of a JWT without verifying it (the server verifies)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload))["exp"])
    except (IndexError, KeyError, ValueError) as error:
        raise ValueError(f"not a JWT with an exp claim: {error}") from None


class Client:
    """A JWT client for tradingsite's ``/api/v1/`` at ``base_url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout: float = 60.0,
        refresh_margin_s: float = 60.0,
        max_retries: int = 5,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL {base_url!r} must look like http://host:port")
        self.base_url = base_url.rstrip("/")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.username, self.password = username, password
        self.timeout = timeout
        self.refresh_margin_s = refresh_margin_s
        self.max_retries = max_retries
        self.access: str | None = None
        self.refresh: str | None = None
        self.access_exp = 0.0
        self.connection: http.client.HTTPConnection | None = None
        self.stats = {"requests": 0, "throttled": 0, "reconnects": 0, "refreshes": 0, "logins": 0}

    # ------------------------------------------------------------------ transport
    def _connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            factory = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self.connection = factory(self.host, self.port, timeout=self.timeout)
        return self.connection

    def close(self) -> None:
        """Close the connection."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _path(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            parts = urlsplit(path)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        if not path.startswith("/"):
            path = API + path
        return self.prefix + path

    def _send(self, method: str, path: str, body: dict | None, token: str | None) -> tuple[int, dict, object]:
        """One request with reconnect-and-retry on a dropped connection; returns (status, headers, JSON or text)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in range(self.max_retries + 1):
            connection = self._connect()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except (http.client.HTTPException, ConnectionError, TimeoutError, OSError):
                self.close()
                self.stats["reconnects"] += 1
                if attempt == self.max_retries:
                    raise
                time.sleep(min(0.2 * 2**attempt, 5))
                continue
            self.stats["requests"] += 1
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            text = raw.decode("utf-8", "replace")
            try:
                parsed = json.loads(text) if text else {}
            except ValueError:
                parsed = text
            return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ auth
    def login(self) -> None:
        """``POST auth/token/`` with the username and password; keeps the access and refresh tokens."""
        status, _, body = self._send(
            "POST", self._path("auth/token/"), {"username": self.username, "password": self.password}, None
        )
        if status != 200:
            raise ApiError("POST", "auth/token/", status, body)
        self._take_tokens(body)
        self.stats["logins"] += 1

    def _take_tokens(self, body: dict) -> None:
        self.access = body["access"]
        self.refresh = body.get("refresh", self.refresh)
        self.access_exp = jwt_expiry(self.access)

    def _refresh(self) -> None:
        status, _, body = self._send("POST", self._path("auth/token/refresh/"), {"refresh": self.refresh}, None)
        if status == 200:
            self._take_tokens(body)
            self.stats["refreshes"] += 1
        else:  # refresh expired or blacklisted: log in again
            self.login()

    def token(self) -> str:
        """A valid access token, refreshed ``refresh_margin_s`` before it expires."""
        if self.access is None:
            self.login()
        elif self.access_exp - time.time() < self.refresh_margin_s:
            self._refresh()
        return self.access

    # ------------------------------------------------------------------ API
    def call(self, method: str, path: str, body: dict | None = None, *, ok: tuple[int, ...] = (200, 201)):
        """An authenticated request; returns the JSON body. Raises ``ApiError`` for a status not in ``ok``."""
        full = self._path(path)
        refreshed = False
        while True:
            status, headers, parsed = self._send(method, full, body, self.token())
            if status == 429:
                self.stats["throttled"] += 1
                try:
                    wait = float(headers.get("retry-after", "1"))
                except ValueError:
                    wait = 1.0
                time.sleep(max(wait, 0.05))
                continue
            if status == 401 and not refreshed:
                refreshed = True
                self._refresh()
                continue
            if status not in ok:
                raise ApiError(method, path, status, parsed)
            return parsed

    def pages(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a paginated list, following ``next`` links (cursor pagination)."""
        url = path + (("&" if "?" in path else "?") + urlencode(params) if params else "")
        while url:
            page = self.call("GET", url)
            if isinstance(page, list):  # an unpaginated list
                yield from page
                return
            yield from page.get("results", [])
            following = page.get("next")
            url = urljoin(self.base_url + "/", following) if following else None

    # the worker's calls ------------------------------------------------
    def register_position(self, payload: dict) -> dict:
        """``POST positions/`` (last paragraph)."""
        return self.call("POST", "positions/", payload, ok=(201,))

    def post_sync(self, payload: dict) -> dict:
        """``POST reconciliation/syncs/``: 201 new, 200 a replay of the same ``sync_id``."""
        return self.call("POST", "reconciliation/syncs/", payload, ok=(200, 201))

    def declare_stops(self, position_id: int | None, ticket: int, payload: dict) -> dict:
        """``PATCH positions/{id}/`` with the bot's new ``sl``/``tp`` (``id`` from the registration's answer)."""
        if position_id is None:
            raise ApiError("PATCH", "positions/{id}/", 0, f"no service id for ticket {ticket}: it was never registered")
        return self.call("PATCH", f"positions/{position_id}/", payload)
