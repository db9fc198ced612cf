"""The psp over HTTP, through the chassis `ServiceClient` (discovered, balanced, breaker,
timeouts, and retries that are safe because every changing call carries its idempotency key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from chassis.http import ServiceCallError, ServiceClient, ServiceResponse
from chassis.resilience import ResilienceError
from payments.errors import ProviderRefusedError, ProviderUnavailableError
from payments.service_layer.ports import ProviderAuthorization

# Failures that prove the request never reached the psp; anything else may have acted.
_NOT_SENT_MARKERS = ("no instance", "CircuitOpenError", "BulkheadFullError", "ClientConnectorError")
# Answers that mean "not now" rather than "no".
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


class HttpPaymentProvider:
    def __init__(self, client: ServiceClient, *, service: str = "psp") -> None:
        self._client = client
        self._service = service

    async def authorize(
        self, *, idempotency_key: str, amount: int, currency: str, token: str, reference: str
    ) -> ProviderAuthorization:
        body = {"amount": amount, "currency": currency, "token": token, "reference": reference}
        return _authorization(
            await self._send("POST", "/v1/authorizations", json=body, key=idempotency_key)
        )

    async def find_authorization(self, idempotency_key: str) -> ProviderAuthorization | None:
        answer = await self._send(
            "GET", "/v1/authorizations", params={"idempotency_key": idempotency_key}
        )
        try:
            items = answer.json()["items"]
            return _authorization_of(items[0]) if items else None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as error:
            raise ProviderUnavailableError(
                f"unreadable psp answer: {error!r}", outcome_unknown=True
            ) from None

    async def get_authorization(self, authorization_id: str) -> ProviderAuthorization:
        return _authorization(await self._send("GET", f"/v1/authorizations/{authorization_id}"))

    async def capture(
        self, authorization_id: str, *, amount: int, idempotency_key: str
    ) -> ProviderAuthorization:
        path = f"/v1/authorizations/{authorization_id}/capture"
        return _authorization(
            await self._send("POST", path, json={"amount": amount}, key=idempotency_key)
        )

    async def void(self, authorization_id: str, *, idempotency_key: str) -> ProviderAuthorization:
        path = f"/v1/authorizations/{authorization_id}/void"
        return _authorization(await self._send("POST", path, json={}, key=idempotency_key))

    async def refund(
        self, authorization_id: str, *, amount: int, idempotency_key: str
    ) -> ProviderAuthorization:
        path = f"/v1/authorizations/{authorization_id}/refund"
        return _authorization(
            await self._send("POST", path, json={"amount": amount}, key=idempotency_key)
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> ServiceResponse:
        try:
            answer = await self._client.request(
                self._service, method, path, json=json, params=params, idempotency_key=key
            )
        except (ServiceCallError, ResilienceError) as error:
            detail = error.detail if isinstance(error, ServiceCallError) else repr(error)
            sent = not any(marker in detail for marker in _NOT_SENT_MARKERS)
            raise ProviderUnavailableError(
                f"{method} {path}: {detail}", outcome_unknown=sent
            ) from None
        if answer.status >= 500 or answer.status in _RETRYABLE_STATUSES:
            raise ProviderUnavailableError(
                f"{method} {path}: psp answered HTTP {answer.status}", outcome_unknown=True
            )
        if answer.status >= 400:
            raise ProviderRefusedError(_reason(answer), f"psp answered HTTP {answer.status}")
        return answer


def _reason(answer: ServiceResponse) -> str:
    """A refusal's reason: the problem's `code`, else its type's slug (`invalid_state`)."""
    try:
        problem = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return f"http_{answer.status}"
    if not isinstance(problem, dict):
        return f"http_{answer.status}"
    code = problem.get("code")
    if isinstance(code, str) and code:
        return code
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
    return slug.replace("-", "_") or f"http_{answer.status}"


def _authorization(answer: ServiceResponse) -> ProviderAuthorization:
    try:
        return _authorization_of(answer.json())
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        # A 2xx we cannot read: whatever happened is unknown; ask again later.
        raise ProviderUnavailableError(
            f"unreadable psp answer: {error!r}", outcome_unknown=True
        ) from None


def _authorization_of(body: Any) -> ProviderAuthorization:
    return ProviderAuthorization(
        id=str(body["id"]),
        status=str(body["status"]),
        decline_code=body.get("decline_code"),
        amount=int(body["amount"]),
        currency=str(body["currency"]),
        captured_amount=int(body.get("captured_amount", 0)),
        refunded_amount=int(body.get("refunded_amount", 0)),
    )
