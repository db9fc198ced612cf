"""Run the inventory service: `python -m inventory` (serve) or `python -m inventory migrate`."""

import sys

from chassis import load_settings_or_exit, serve
from inventory.bootstrap import build_app, migrate
from inventory.settings import InventorySettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(InventorySettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
        return
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
