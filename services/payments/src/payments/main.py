"""Run payments: `python -m payments` (serve) or `python -m payments migrate`."""

import sys

from chassis import load_settings_or_exit, serve
from payments.bootstrap import build_app, migrate
from payments.settings import PaymentsSettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(PaymentsSettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
        return
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
