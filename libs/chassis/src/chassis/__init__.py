"""Mercato's chassis: what every service stands on.

Settings, the app factory (health, metrics, logs, problem+json), the database and its
migrations, caller identity, and the embedded NATS server used by `mercato up` and tests.
Resilience, discovery and messaging live in their own subpackages.
"""

from chassis._app import ReadinessCheck, create_app
from chassis._columns import UtcDateTime
from chassis._database import Database
from chassis._embedded_nats import EmbeddedNatsServer, find_nats_server, free_port
from chassis._guards import api_router, current_principal, principal_of, require_role
from chassis._http_metrics import IN_FLIGHT as HTTP_IN_FLIGHT
from chassis._http_metrics import REQUEST_DURATION as HTTP_REQUEST_DURATION
from chassis._http_metrics import REQUESTS as HTTP_REQUESTS
from chassis._http_metrics import method_label
from chassis._identity import PRINCIPAL_HEADER, InternalTokenCodec, Principal
from chassis._logging import configure_logging
from chassis._migrations import find_migrations, run_alembic_env, upgrade_database
from chassis._observability import configure_observability
from chassis._pagination import Page, decode_cursor, encode_cursor
from chassis._problems import PROBLEM_MEDIA_TYPE, problem_body, problem_response
from chassis._processes import die_with_parent, terminate
from chassis._server import serve
from chassis._settings import Environment, ServiceSettings, load_settings, load_settings_or_exit
from chassis._types import CurrencyCode, Money, SafeText, SingleLine, clean_text

__all__ = [
    "HTTP_IN_FLIGHT",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "PRINCIPAL_HEADER",
    "PROBLEM_MEDIA_TYPE",
    "CurrencyCode",
    "Database",
    "EmbeddedNatsServer",
    "Environment",
    "InternalTokenCodec",
    "Money",
    "Page",
    "Principal",
    "ReadinessCheck",
    "SafeText",
    "ServiceSettings",
    "SingleLine",
    "UtcDateTime",
    "api_router",
    "clean_text",
    "configure_logging",
    "configure_observability",
    "create_app",
    "current_principal",
    "decode_cursor",
    "die_with_parent",
    "encode_cursor",
    "find_migrations",
    "find_nats_server",
    "free_port",
    "load_settings",
    "load_settings_or_exit",
    "method_label",
    "principal_of",
    "problem_body",
    "problem_response",
    "require_role",
    "run_alembic_env",
    "serve",
    "terminate",
    "upgrade_database",
]
