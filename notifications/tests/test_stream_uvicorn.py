"""Many open streams on the real ASGI server: uvicorn in a subprocess, on the test's PostgreSQL database.

Open ``STREAMS`` SSE connections to uvicorn on 127.0.0.1, commit a sync, and every stream receives
the sync's rows; the uvicorn process holds them with a handful of threads (coroutines, not a thread
per connection). PostgreSQL only: the subprocess must see the rows the test commits.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conftest import access_token_for
from notifications.tests.test_bus import pubsub_connections
from notifications.tests.test_stream import ids_of, post_syncs
from reconciliation.tests.factories import Clock

ROOT = Path(__file__).resolve().parents[2]
STREAMS = 300
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def uvicorn_server():
    db = settings.DATABASES["default"]
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingsite.settings",
        "DJANGO_DOTENV": "off",
        "DJANGO_DEBUG": "true",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.JWT_SIGNING_KEY,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SSE_HEARTBEAT_S": "5",
        "SSE_POLL_S": "1",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tradingsite.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("uvicorn did not start")
    yield process, port
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _open(port: int, token: str, last_id: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/events/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Last-Event-ID: {last_id}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer


async def _ids_until(reader, wanted: set[int], timeout: float) -> set[int]:
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen and time.monotonic() < deadline:
        line = await asyncio.wait_for(reader.readline(), max(deadline - time.monotonic(), 0.01))
        if line.startswith(b"id: "):
            seen.add(int(line[4:]))
    return seen


def post_and_list(client, user) -> list[int]:
    """Post a sync and list the user's log ids, from a worker thread that closes its connection after."""
    try:
        post_syncs(client, Clock(), 1, ticket=6002)
        return ids_of(user)
    finally:
        connection.close()


def test_hundreds_of_streams_on_uvicorn_all_receive_a_commit(uvicorn_server, user, auth_client):
    process, port = uvicorn_server
    token = access_token_for(user)
    post_syncs(auth_client, Clock(), 1, ticket=6001)
    connection.close()
    last = ids_of(user)[-1]

    async def scenario() -> tuple[list[set[int]], set[int], int, int]:
        streams = [await _open(port, token, last) for _ in range(STREAMS)]
        threads = int(Path(f"/proc/{process.pid}/status").read_text().split("Threads:")[1].split()[0])
        bus_connections = len(pubsub_connections()) if settings.REDIS_URL else 1
        wanted = {pk for pk in await asyncio.to_thread(post_and_list, auth_client, user) if pk > last}
        seen = await asyncio.gather(*(_ids_until(reader, wanted, 20) for reader, _ in streams))
        for _, writer in streams:
            writer.close()
        return seen, wanted, threads, bus_connections

    seen, wanted, threads, bus_connections = asyncio.run(scenario())
    assert wanted
    assert all(ids == wanted for ids in seen), sum(ids == wanted for ids in seen)
    # a coroutine per stream: uvicorn's threads are the event loop plus the small database pool
    print(f"uvicorn threads with {STREAMS} open streams: {threads}")
    assert threads < 40, threads
    assert bus_connections == 1  # with Redis: the process's one pub/sub connection, not one per stream
