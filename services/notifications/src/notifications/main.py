"""Run notifications: `python -m notifications` (serve) or `python -m notifications migrate`."""

import sys

from chassis import load_settings_or_exit, serve
from notifications.bootstrap import build_app, migrate
from notifications.settings import NotificationsSettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(NotificationsSettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
        return
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
