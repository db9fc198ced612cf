"""Run identity: `python -m identity` (serve), `python -m identity migrate`, or
`python -m identity rotate-keys` (start signing with a new key now)."""

import asyncio
import sys

from chassis import load_settings_or_exit, serve
from identity.bootstrap import build_app, migrate, rotate_keys
from identity.settings import IdentitySettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings_or_exit(IdentitySettings)
    if args[:1] == ["migrate"]:
        migrate(settings)
    elif args[:1] == ["rotate-keys"]:
        print(f"signing with key {asyncio.run(rotate_keys(settings))}")  # noqa: T201
    else:
        serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
