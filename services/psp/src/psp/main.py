"""Run the psp: `python -m psp` (serve) or `python -m psp migrate`."""

import sys

from chassis import load_settings_or_exit, serve
from psp.bootstrap import build_app, migrate
from psp.settings import PspSettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(PspSettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
        return
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
