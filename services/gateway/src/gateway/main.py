"""Run the gateway: `python -m gateway`."""

from aiohttp import web

from chassis import load_settings_or_exit
from gateway.bootstrap import build_app
from gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings_or_exit(GatewaySettings)
    web.run_app(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
    )


if __name__ == "__main__":
    main()
