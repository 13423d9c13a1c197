"""HTTP-level guards that run before any view.

:class:`LengthRequiredMiddleware`: a request body sent with ``Transfer-Encoding: chunked`` and no
``Content-Length`` is refused with **411 Length Required** (JSON body). Django's WSGI request reads
exactly ``Content-Length`` bytes of the body, so without the header every view would see an empty
body and answer a misleading 400. The sync worker and every HTTP client library send
``Content-Length`` for a body they hold in memory; a client that streams must buffer it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse


class SyncAndAsyncMiddleware:
    """Base of a middleware that runs in both modes: under ASGI (the event stream's uvicorn) a chain
    with a sync-only middleware would put each request through a thread. A subclass's ``__call__``
    returns ``self.__acall__(request)`` when ``self.is_async``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # type: ignore[type-var]  # a callable instance, as Django's own


class LengthRequiredMiddleware(SyncAndAsyncMiddleware):
    """411 for a chunked request body without ``Content-Length`` (see the module docstring)."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return self._refusal(request) or await self.get_response(request)

    @staticmethod
    def _refusal(request: HttpRequest) -> HttpResponse | None:
        transfer_encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
        if "chunked" in transfer_encoding.lower() and not request.META.get("CONTENT_LENGTH"):
            return JsonResponse(
                {"detail": "A request body needs a Content-Length header; chunked bodies are not accepted."},
                status=411,
            )
        return None
