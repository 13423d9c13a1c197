"""ASGI entry point: the event stream's server (uvicorn, ``docker-compose.yml`` service ``stream``).

nginx routes only ``/api/v1/events/stream/`` here; everything else is WSGI under gunicorn.

An open stream must cost a coroutine, not a thread. Django's ``ASGIHandler`` runs each request in a
``ThreadSensitiveContext``, which gives every request its own thread for thread-sensitive sync
calls (the ``request_started``/``request_finished`` signal receivers such as
``close_old_connections``) for as long as the request lasts: a thread per open stream. This server's
handler leaves that context out, so those few short calls share asgiref's single sync thread; the
stream's database reads run in the default thread pool (``notifications.stream``), and every
middleware is async capable (``ASGI_STREAM_SERVER`` drops whitenoise, which is sync only and
serves no static file here).
"""

import os

from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
os.environ.setdefault("ASGI_STREAM_SERVER", "true")


class StreamASGIHandler(ASGIHandler):
    """Django's ASGI handler without a per-request thread-sensitive context (see the module docstring)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


def _application() -> StreamASGIHandler:
    import django

    django.setup(set_prefix=False)
    return StreamASGIHandler()


application = _application()
