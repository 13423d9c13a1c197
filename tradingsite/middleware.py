"""HTTP-level guards that run before any view.

:class:`LengthRequiredMiddleware`: a request body sent with ``Transfer-Encoding: chunked`` and no
``Content-Length`` is refused with **411 Length Required** (JSON body). Django's WSGI request reads
exactly ``Content-Length`` bytes of the body, so without the header every view would see an empty
body and answer a misleading 400. The sync worker and every HTTP client library send
``Content-Length`` for a body they hold in memory; a client that streams must buffer it first.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


class LengthRequiredMiddleware:
    """411 for a chunked request body without ``Content-Length`` (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        transfer_encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
        if "chunked" in transfer_encoding.lower() and not request.META.get("CONTENT_LENGTH"):
            return JsonResponse(
                {"detail": "A request body needs a Content-Length header; chunked bodies are not accepted."},
                status=411,
            )
        return self.get_response(request)
