"""OpenAPI: the error responses of every operation, documented once for all views.

drf-spectacular documents only the success response of an operation (drf-spectacular issues #101
and #622), so a client — or schemathesis's ``status_code_conformance`` — finds 400/401/404/413/429
undocumented although every view answers them. :class:`ErrorResponsesAutoSchema` (the project's
``DEFAULT_SCHEMA_CLASS``) adds, to each operation, the JSON errors our views and
:func:`tradingsite.api.exception_handler` actually give, derived from the operation itself:

* **401** — every operation: no or a bad token, or bad credentials/tokens on the auth endpoints;
* **400** — an operation with a request body or query parameters (validation: field → messages);
* **404** — a path parameter (another user's object is a 404), an ``account`` parameter (another
  user's account is a 404) or a ``cursor`` parameter (DRF answers an invalid cursor with 404);
* **413** — a request body (over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, 1 MiB);
* **429** — a view with throttles.

A response a view declares itself (``@extend_schema(responses={409: ...})``) is kept as declared.

It also documents the blank value of read-only choice fields whose model field is ``blank=True``
(e.g. ``close_reason = ""`` on an open position): DRF drops ``allow_blank`` from read-only model
fields (``ModelSerializer.include_extra_kwargs``), so drf-spectacular's enum would omit the ``""``
the API really returns.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

DETAIL_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
    "required": ["detail"],
}
# A validation error is {field: [messages]} (or {"detail": ...} for a parse error); a bare
# ValidationError("...") renders as a list of messages.
VALIDATION_BODY: dict[str, Any] = {
    "anyOf": [
        {"type": "object", "additionalProperties": True},
        {"type": "array", "items": {"type": "string"}},
    ]
}


def _model_allows_blank(field: serializers.Field) -> bool:
    """True when ``field`` renders a ``CharField``/``TextField`` of its serializer's model with ``blank=True``."""
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source:
        return False
    try:
        model_field = model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return False
    return isinstance(model_field, models.CharField | models.TextField) and model_field.blank


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class ErrorResponsesAutoSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema`` plus the operation's 4xx responses (see the module docstring)."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):  # noqa: D401 - drf-spectacular API
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:  # excluded from the schema
            return None
        responses = operation.setdefault("responses", {})
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation or method.upper() in ("POST", "PUT", "PATCH")
        in_query = any(p.get("in") == "query" for p in parameters)
        in_path = any(p.get("in") == "path" for p in parameters)
        cursor = any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters)
        account = any(p.get("in") == "query" and p.get("name") == "account" for p in parameters)

        errors = {"401": _json("Authentication failed: no, an invalid or an expired token.", DETAIL_BODY)}
        if has_body or in_query:
            errors["400"] = _json("Invalid input: field errors; nothing was written.", VALIDATION_BODY)
        if in_path or cursor or account:
            errors["404"] = _json("Not found (another user's object or account, or an invalid cursor).", DETAIL_BODY)
        if has_body:
            errors["413"] = _json("Request body over the size limit; nothing was written.", DETAIL_BODY)
        if getattr(self.view, "throttle_classes", None):
            errors["429"] = _json("Throttled; retry after the Retry-After header's seconds.", DETAIL_BODY)
        for code, response in errors.items():
            responses.setdefault(code, response)
        return operation

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        if (
            isinstance(field, serializers.ChoiceField)
            and field.read_only
            and not field.allow_blank
            and _model_allows_blank(field)
        ):
            field = copy.copy(field)
            field.allow_blank = True
        return super()._map_serializer_field(field, direction, bypass_extensions)


# --------------------------------------------------------------------------------------------
# Text users see: docstrings are written for maintainers (reStructuredText roles and literals); the
# browsable API and the OpenAPI descriptions show them to API users as plain text.
# --------------------------------------------------------------------------------------------
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|ref):`~?([^`<]+?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str) -> str:
    """``text`` without reStructuredText markup: ``:func:`x``` → ``x``, double-backquoted literals → the
    literal in single backquotes (Markdown code, which both the browsable API and Swagger UI render)."""
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"\1", text))


def view_description(view: Any, html: bool = False) -> str:
    """DRF's ``VIEW_DESCRIPTION_FUNCTION``: DRF's own description of the view (its ``description`` or
    docstring, dedented; Markdown to HTML when ``html``), in plain text."""
    from django.utils.encoding import smart_str
    from rest_framework.utils import formatting

    description = getattr(view, "description", None) or view.__class__.__doc__ or ""
    description = plain_text(formatting.dedent(smart_str(description)))
    return formatting.markup_description(description) if html else description


def plain_descriptions(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every ``description`` and ``summary`` of the schema in plain text."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "summary") and isinstance(value, str):
                    node[key] = plain_text(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(result)
    return result
