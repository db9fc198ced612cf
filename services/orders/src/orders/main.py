"""Run the orders service: `python -m orders` (serve) or `python -m orders migrate`."""

import sys

from chassis import load_settings_or_exit, serve
from orders.bootstrap import build_app, migrate
from orders.settings import OrdersSettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(OrdersSettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
        return
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
