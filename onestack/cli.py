"""The ``onestack`` command.

    onestack up [--host H] [--port P] [--state-dir D]   serve the all-in-one cloud
    onestack db upgrade [--state-dir D]                  upgrade the schema in place
    onestack fernet rotate [--state-dir D]               rotate the token keys
    onestack image build-test [--output F]               build the test guest image
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

# Nothing else at import time: `onestack up` starts hashing a first start's
# bootstrap passwords before it imports anything heavier (asyncio included).

STARTED = time.perf_counter()


def _settings(args: argparse.Namespace) -> Any:
    from onestack.config import load_settings

    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "public_url": getattr(args, "public_url", None),
    }
    return load_settings(getattr(args, "state_dir", None), overrides)


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def cmd_up(args: argparse.Namespace) -> int:
    # Start-up allocates hundreds of thousands of long-lived objects (modules,
    # classes, mappers, routes): collecting while they are built is wasted
    # work. Collection resumes once the cloud is up.
    gc.disable()
    from onestack.identity.bootstrap import prestart

    settings = _settings(args)
    # A first start hashes two bootstrap passwords (bcrypt, slow on purpose):
    # begin now, in a background thread, while the rest of the cloud is imported.
    prestart(settings)

    import asyncio
    import signal

    import uvicorn

    from onestack.app import build_app, build_cloud, prepare

    _logging("warning" if args.quiet else settings.log_level)
    cloud = build_cloud(settings)
    # The routes first: on a first start the bootstrap passwords are still
    # being hashed, and prepare() waits for them last.
    app = build_app(cloud)
    prepare(cloud)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="none",  # no service speaks WebSocket; saves importing a WebSocket library
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            elapsed = time.perf_counter() - STARTED
            clouds = settings.state_dir / "clouds.yaml"
            print(
                f"onestack is up at {settings.base_url} ({elapsed:.2f}s)\n"
                f"  state:  {settings.state_dir}\n"
                f"  use it: export OS_CLIENT_CONFIG_FILE={clouds}\n"
                f"          openstack --os-cloud onestack-admin catalog list\n"
                f"          openstack --os-cloud onestack server list   # the demo user",
                flush=True,
            )
        # Move everything start-up made out of the collector's sight, so that
        # later collections only walk new objects. No collection first: it
        # would hold the event loop for ~50 ms to free a few hundred objects.
        gc.freeze()
        gc.enable()
        await task

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the
    # signal with the handler it found: make that handler a clean exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


def _exit_cleanly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from onestack.common import migrate
    from onestack.common.db import Database

    settings = _settings(args)
    db = Database(settings.db_url)
    ran = migrate.upgrade(db)
    print("upgraded" if ran else "already up to date")
    return 0


def cmd_fernet_rotate(args: argparse.Namespace) -> int:
    from onestack.app import build_cloud, prepare

    settings = _settings(args)
    cloud = build_cloud(settings)
    prepare(cloud)
    identity = cloud.service("identity")
    identity.tokens.keys.rotate()
    print("rotated: new tokens are signed with a new key; tokens signed by older keys stay valid")
    return 0


def cmd_image_build_test(args: argparse.Namespace) -> int:
    from onestack.guest.build import main as build_main

    return build_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestack", description="An OpenStack-compatible cloud")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", help="directory for the database, keys and data")

    up = sub.add_parser("up", help="serve the all-in-one cloud")
    common(up)
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8800)")
    up.add_argument("--public-url", help="URL clients use to reach this cloud")
    up.add_argument("--quiet", action="store_true", help="log warnings only")
    up.set_defaults(func=cmd_up)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upg = db_sub.add_parser("upgrade", help="upgrade the schema in place")
    common(upg)
    upg.set_defaults(func=cmd_db_upgrade)

    fernet = sub.add_parser("fernet", help="token key management")
    fernet_sub = fernet.add_subparsers(dest="fernet_command", required=True)
    rot = fernet_sub.add_parser("rotate", help="rotate the token signing keys")
    common(rot)
    rot.set_defaults(func=cmd_fernet_rotate)

    image = sub.add_parser("image", help="images")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    bt = image_sub.add_parser("build-test", help="build the test guest image offline", add_help=False)
    bt.add_argument("rest", nargs=argparse.REMAINDER)
    bt.set_defaults(func=cmd_image_build_test)

    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse.REMAINDER does not take options that come first: hand them on
        if getattr(args, "func", None) is not cmd_image_build_test:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = [*unknown, *args.rest]
    # `up`: uvicorn turns SIGINT/SIGTERM into a graceful shutdown.
    from onestack.common.masterkey import MasterKeyError

    try:
        return int(args.func(args))
    except MasterKeyError as exc:  # a configuration error: one line, no traceback
        print(f"onestack: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
