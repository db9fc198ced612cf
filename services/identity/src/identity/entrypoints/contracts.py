"""Identity's message contracts: the event it publishes (`user_registered` in
adapters/repository.py builds it; never with the password).

Served as AsyncAPI at `GET /asyncapi.json`; docs/events.md is generated from them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from chassis.messaging import MessageContracts, Published
from identity.entrypoints.api import Name

__all__ = ["CONTRACTS", "USER_REGISTERED", "UserRegisteredV1"]

USER_REGISTERED = "identity.user.registered.v1"


class UserRegisteredV1(BaseModel):
    """A user signed up (customers, and the first admin when it is created)."""

    user_id: Annotated[str, Field(min_length=1, max_length=64)]
    email: Annotated[
        str,
        Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", description="as normalised"),
    ]
    name: Name


CONTRACTS = MessageContracts(
    "identity",
    publishes={
        USER_REGISTERED: Published(
            UserRegisteredV1,
            subject="user_id",
            example={
                "user_id": "8d3e2f1a-6b7c-4d5e-8f90-a1b2c3d4e5f6",
                "email": "ada@example.com",
                "name": "Ada Lovelace",
            },
        )
    },
)
