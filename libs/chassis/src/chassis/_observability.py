"""Process-wide observability set-up, shared by `create_app` and non-FastAPI entry points."""

from __future__ import annotations

from chassis._logging import configure_logging
from chassis._settings import ServiceSettings
from chassis.tracing import configure_tracing

__all__ = ["configure_observability"]


def configure_observability(settings: ServiceSettings, *, version: str = "0.1.0") -> None:
    """JSON logs on stdout and spans where the settings and `OTEL_*` variables say."""
    configure_logging(
        service=settings.service_name, instance=settings.instance_id, level=settings.log_level
    )
    configure_tracing(
        service=settings.service_name,
        instance=settings.instance_id,
        trace_dir=settings.trace_dir,
        sample_ratio=settings.trace_sample_ratio,
        version=version,
    )
