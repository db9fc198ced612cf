"""The OpenAPI document made true to what the chassis answers.

FastAPI documents a 422 `HTTPValidationError` in `application/json` and nothing else, while
the chassis answers every error as an RFC 9457 problem (`install_problem_handlers`, the
middleware's 400/413/500) and refuses callers without the right internal identity token
before the body is read (`GuardedRoute`). A client generated from the document, or a fuzzer
checking responses against it, must see what really comes back, so the document is
rewritten once when first asked for:

- every error response a route declares (422, and e.g. 409/428/429/503) is a `Problem` in
  `application/problem+json`; any other client error is documented as `4XX`;
- a guarded route requires the `internalPrincipal` header scheme and documents 401 (and
  403 when it needs a role).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from chassis._guards import _guards
from chassis._identity import PRINCIPAL_HEADER

__all__ = ["INTERNAL_SECURITY_SCHEME", "PROBLEM_SCHEMA", "document_problems_and_guards"]

INTERNAL_SECURITY_SCHEME = "internalPrincipal"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Extension members (e.g. `sku`, `trace_id`) "
    "may follow the standard ones.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "examples": ["/problems/validation"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "one entry per refused field",
            "items": {
                "type": "object",
                "required": ["location", "field", "message"],
                "properties": {
                    "location": {"type": "string"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

_SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": PRINCIPAL_HEADER,
    "description": "The caller's identity as a short-lived internal token the gateway signs "
    "after verifying the client's bearer token. Clients never send it themselves.",
}


def document_problems_and_guards(app: FastAPI) -> None:
    """Make `app.openapi()` document problem+json errors and guarded routes (see above)."""
    generate = app.openapi
    rewritten: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI until its routes change
        if not rewritten or rewritten[0] is not document:
            rewrite(document, guarded_operations(app))
            rewritten[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def guarded_operations(app: FastAPI) -> dict[tuple[str, str], frozenset[str | None]]:
    """`(path, method)` of every guarded route, with the roles its guards demand (None for
    any signed-in caller)."""
    found: dict[tuple[str, str], frozenset[str | None]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        roles = frozenset(guard.role for guard in _guards(route.dependant))
        path = context.path_format
        if roles and path:
            for method in context.methods or ():
                found[(path, method.lower())] = roles
    return found


def rewrite(
    document: dict[str, Any], guarded: Mapping[tuple[str, str], frozenset[str | None]]
) -> dict[str, Any]:
    """`document` with problem+json errors and the guards' security requirements."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in _HTTP_METHODS:
                _rewrite_operation(operation, guarded.get((path, method)))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    for name in _FASTAPI_ERROR_SCHEMAS:  # each only referenced by the one before, if at all
        definition = schemas.pop(name, None)
        if definition is not None and f"#/components/schemas/{name}" in _references(document):
            schemas[name] = definition
    if guarded:
        components.setdefault("securitySchemes", {})[INTERNAL_SECURITY_SCHEME] = dict(
            _SECURITY_SCHEME
        )
    return document


def _rewrite_operation(operation: dict[str, Any], roles: frozenset[str | None] | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if roles:
        operation["security"] = [{INTERNAL_SECURITY_SCHEME: []}]
        responses.setdefault("401", {"description": "No valid identity: sign in"})
        if any(role is not None for role in roles):
            needed = " or ".join(sorted(role for role in roles if role is not None))
            responses.setdefault("403", {"description": f"Signed in, but not as {needed}"})
    responses.setdefault(
        "4XX",
        {"description": "Any other refusal (malformed JSON, payload too large, not found…)"},
    )
    for status, response in responses.items():
        if status[:1] in ("4", "5"):
            if status == "422":
                response["description"] = "Invalid request (a validation problem lists each field)"
            response["content"] = {"application/problem+json": {"schema": dict(_PROBLEM_REF)}}


def _references(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _references(value)
        return found
    if isinstance(node, list):
        return set().union(*(_references(value) for value in node))
    return set()
