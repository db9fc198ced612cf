"""Run the catalog service: `python -m catalog` (serve) or `python -m catalog migrate`."""

import sys

from catalog.bootstrap import build_app, migrate
from catalog.settings import CatalogSettings
from chassis import load_settings_or_exit, serve


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(CatalogSettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
        return
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
