"""Notifications' message contracts: it publishes nothing, and consumes the events of
entrypoints/events.py, under its own schemas of them.

Served as AsyncAPI at `GET /asyncapi.json`; docs/events.md is generated from them.
"""

from __future__ import annotations

from chassis.messaging import MessageContracts
from notifications.entrypoints.events import SCHEMAS

__all__ = ["CONTRACTS"]

CONTRACTS = MessageContracts("notifications", consumes=SCHEMAS)
