"""The ``onestack`` command.

    onestack up [--host H] [--port P] [--s3-port P] [--state-dir D]
                                                         serve the all-in-one cloud
    onestack db upgrade [--state-dir D]                  upgrade the schema in place
    onestack fernet rotate [--state-dir D]               rotate the token keys
    onestack image build-test [--output F]               build the test guest image
    onestack agent --url URL [--host H] --role R          run a host's agent (no database)
    onestack agent-credential create --host H            a credential for a host's agent
    onestack agent-credential list | delete ID
    onestack network-agent --fd N                        (started by `up`) the network agent
    onestack ring show|build|add|rebalance ...           object storage rings
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any, NoReturn

# Nothing else at import time: `onestack up` starts hashing a first start's
# bootstrap passwords before it imports anything heavier (asyncio included).

STARTED = time.perf_counter()


def _settings(args: argparse.Namespace) -> Any:
    from onestack.config import load_settings

    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "public_url": getattr(args, "public_url", None),
        "objectstore.s3_port": getattr(args, "s3_port", None),
        "network.host_network": False if getattr(args, "no_host_network", False) else None,
    }
    return load_settings(getattr(args, "state_dir", None), overrides)


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _fail(command: str, message: object) -> int:
    print(f"onestack {command}: {message}", file=sys.stderr)
    return 1


def _take_state_dir(settings: Any, host_port: tuple[str, int] | None = None) -> tuple[Any, Any]:
    """Before anything is created: nobody else holds the state directory, the port is
    free (bound now, served later), then the directory is created and locked.
    (lock, socket or None); StartError says why not."""
    from onestack.startup import StartError, StateLock, listen_socket, secure_state_dir

    lock = StateLock(settings.state_dir)
    pid = lock.holder()
    if pid is not None:
        raise StartError(lock.message(pid))
    sock = listen_socket(*host_port) if host_port else None
    try:
        secure_state_dir(settings.state_dir)
        lock.acquire()
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    return lock, sock


def _websocket_protocol(**kwargs: Any) -> Any:
    """uvicorn's WebSocket protocol (websockets' Sans-I/O core), made for each
    upgrade request: a cloud whose consoles nobody opens never imports it."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    return WebSocketsSansIOProtocol(**kwargs)


def cmd_up(args: argparse.Namespace) -> int:
    # Start-up allocates hundreds of thousands of long-lived objects (modules,
    # classes, mappers, routes): collecting while they are built is wasted
    # work. Collection resumes once the cloud is up.
    gc.disable()
    from onestack.startup import StartError, limit_malloc_arenas

    limit_malloc_arenas()

    try:
        settings = _settings(args)
        lock, sock = _take_state_dir(settings, (settings.host, settings.port))
    except (StartError, ValueError) as exc:
        return _fail("up", exc)
    from onestack.identity.bootstrap import prestart

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
    try:
        prepare(cloud)
    except Exception as exc:
        if getattr(exc, "start_error", False):  # a service cannot start here; it says why
            lock.release()
            return _fail("up", exc)
        raise
    # Before any event loop or worker thread: a service may fork a process
    # here that shares what start-up made (the network agent's first one).
    for svc in cloud.services.values():
        pre_fork = getattr(svc, "pre_fork", None)
        if pre_fork is not None:
            pre_fork()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Compute's console proxy speaks WebSocket on this listener; the
        # protocol (and its library) is imported at the first upgrade request.
        # (uvicorn calls ``ws`` like a protocol class: a factory serves.)
        ws=_websocket_protocol,  # type: ignore[arg-type]
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=5,
    )
    tasks_service = cloud.services.get("tasks")

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # End remote agents' long-polling claims now, so that the
            # graceful shutdown does not wait for them (on the loop, not in
            # the signal handler, which may have interrupted a lock holder).
            if tasks_service is not None:
                try:
                    asyncio.get_running_loop().call_soon_threadsafe(
                        tasks_service.begin_shutdown)
                except RuntimeError:
                    pass
            super().handle_exit(sig, frame)

    server = Server(config)
    banner = _banner(settings, cloud)
    listeners = [item for svc in cloud.services.values()
                 for item in getattr(svc, "listeners", list)()]

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        extra = []
        if server.started:
            # The services' own ports (S3), once the services have started.
            lines = []
            for listener in listeners:
                started = await _serve_listener(listener)
                if started is not None:
                    extra.append(started)
                    lines.append(f"  {listener.name + ':':9} {listener.url}\n")
                else:
                    lines.append(f"  {listener.name + ':':9} not served: "
                                 f"{listener.host}:{listener.port} is in use\n")
            elapsed = time.perf_counter() - STARTED
            print(f"onestack is up at {settings.base_url} ({elapsed:.2f}s)\n{banner}\n"
                  f"{''.join(lines)}", end="", flush=True)
        # Move everything start-up made out of the collector's sight, so that
        # later collections only walk new objects. No collection first: it
        # would hold the event loop for ~50 ms to free a few hundred objects.
        gc.freeze()
        gc.enable()
        # The other listeners stop first, before the services do.
        while extra and not task.done() and not server.should_exit:
            await asyncio.sleep(0.1)
        for other, _loop in extra:
            other.should_exit = True
        for other, loop in extra:
            await loop
            await other.shutdown()
        await task

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the
    # signal with the handler it found: make that handler a clean exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        lock.release()
    return 0


def _banner(settings: Any, cloud: Any) -> str:
    """How to use the cloud, with commands that work here: the ``openstack`` client on
    PATH, else the one installed next to this Python, else how to install it; one
    command per service the cloud has."""
    import os
    import shlex
    import shutil
    from pathlib import Path

    clouds = settings.state_dir / "clouds.yaml"
    client = shutil.which("openstack")
    beside = Path(sys.executable).parent / "openstack"
    if client is None and os.access(beside, os.X_OK):
        client = str(beside)
    elif client is not None:
        client = "openstack"
    services = sorted({e.service_type for e in cloud.catalog()})
    lines = [
        f"  state:    {settings.state_dir} (locked by this process, pid {os.getpid()})",
        f"  services: {', '.join(services)}",
        f"  stop it:  Ctrl-C here, or kill {os.getpid()}",
        f"  use it:   export OS_CLIENT_CONFIG_FILE={shlex.quote(str(clouds))}",
    ]
    if client is None:
        lines.append("            (no openstack client here: pip install python-openstackclient)")
        client = "openstack"
    cmd = shlex.quote(client)
    lines.append(f"            {cmd} --os-cloud onestack-admin catalog list")
    if "image" in services:
        lines.append(f"            {cmd} --os-cloud onestack image list   # as the demo user")
    else:
        lines.append(f"            {cmd} --os-cloud onestack token issue   # as the demo user")
    for svc in cloud.services.values():  # what a service says of itself (the data plane's state)
        lines.extend(getattr(svc, "banner_lines", list)())
    return "\n".join(lines)


async def _serve_listener(listener: Any) -> tuple[Any, Any] | None:
    """Serve a service's own port (no lifespan: the main server runs it, and
    stops this one when it stops). None if the port cannot be bound."""
    import asyncio
    import logging
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listener.host, listener.port))
    except OSError as exc:
        sock.close()
        logging.getLogger("onestack").error("%s listener on %s:%s: %s", listener.name,
                                            listener.host, listener.port, exc)
        return None
    sock.listen(2048)
    sock.setblocking(False)
    config = uvicorn.Config(listener.app, log_config=None, access_log=False, lifespan="off",
                            ws="none", timeout_graceful_shutdown=5)
    config.load()
    other = uvicorn.Server(config)
    other.lifespan = config.lifespan_class(config)
    await other.startup(sockets=[sock])
    return other, asyncio.create_task(other.main_loop())


def _exit_cleanly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from onestack.common import migrate
    from onestack.common.db import Database
    from onestack.startup import StartError

    try:
        settings = _settings(args)
        _take_state_dir(settings)  # not under a running cloud's feet
    except (StartError, ValueError) as exc:
        return _fail("db upgrade", exc)
    db = Database(settings.db_url)
    with db.schema_lock():
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


def cmd_agent(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import socket
    from pathlib import Path

    from onestack.common.tasks.agent import AgentConfig, run_agent

    _logging("warning" if args.quiet else "info")
    credential = os.environ.get("ONESTACK_AGENT_CREDENTIAL", "")
    if args.credential_file:
        try:
            credential = Path(args.credential_file).read_text().strip()
        except OSError as exc:
            print(f"onestack agent: cannot read the credential file: {exc}", file=sys.stderr)
            return 2
    if not credential:
        print("onestack agent: no credential: set ONESTACK_AGENT_CREDENTIAL or give "
              "--credential-file (onestack agent-credential create makes one)", file=sys.stderr)
        return 2
    url = args.url or os.environ.get("ONESTACK_AGENT_URL", "")
    if not url:
        print("onestack agent: no cloud URL: give --url or set ONESTACK_AGENT_URL",
              file=sys.stderr)
        return 2
    config = AgentConfig(
        url=url, host=args.host or socket.gethostname(), credential=credential,
        modules=list(args.roles), binary=args.binary, concurrency=args.concurrency,
        lease_seconds=args.lease_seconds, long_poll_seconds=args.long_poll,
        report_interval=args.report_interval, availability_zone=args.availability_zone,
    )
    try:
        return asyncio.run(run_agent(config))
    except (ImportError, ValueError) as exc:
        print(f"onestack agent: {exc}", file=sys.stderr)
        return 2


def cmd_network_agent(args: argparse.Namespace) -> int:
    from onestack.network.app import run_agent_process

    return run_agent_process(args.fd)


def cmd_agent_credential(args: argparse.Namespace) -> int:
    from onestack.common import migrate
    from onestack.common.db import Database
    from onestack.common.tasks import credentials

    settings = _settings(args)
    db = Database(settings.db_url)
    try:
        migrate.upgrade(db)
        if args.credential_command == "create":
            cred_id, secret = credentials.create(db, args.host, args.description)
            print(secret)
            print(f"agent credential {cred_id} for host {args.host}: give it to that host's "
                  "agent (ONESTACK_AGENT_CREDENTIAL or --credential-file); it is not shown "
                  "again", file=sys.stderr)
        elif args.credential_command == "list":
            for info in credentials.list_all(db):
                print(f"{info.id}  {info.host}  {info.created_at:%Y-%m-%dT%H:%M:%SZ}  "
                      f"{info.description or ''}".rstrip())
        elif not credentials.delete_one(db, args.id):
            print(f"no agent credential {args.id}", file=sys.stderr)
            return 1
    finally:
        db.dispose()
    return 0


def cmd_image_build_test(args: argparse.Namespace) -> int:
    from onestack.guest.build import main as build_main

    return build_main(args.rest)


def _port(text: str) -> int:
    """--port: a TCP port number (1-65535), else argparse's one-line usage error."""
    from onestack.startup import StartError, check_port

    try:
        return check_port(int(text))
    except (ValueError, StartError):
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port number (1-65535)") from None


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the usage itself is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="onestack", description="An OpenStack-compatible cloud")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", help="directory for the database, keys and data")

    up = sub.add_parser("up", help="serve the all-in-one cloud")
    common(up)
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=_port, help="port to listen on (default 8800)")
    up.add_argument("--public-url", help="URL clients use to reach this cloud")
    up.add_argument("--s3-port", type=int,
                    help="port of the S3 listener (default: the port + 1; 0: no S3)")
    up.add_argument("--no-host-network", action="store_true",
                    help="keep the data plane inside namespaces: no veth to the host for the "
                         "external network (a namespace <prefix>-ext stands in for the host)")
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

    agent = sub.add_parser("agent", help="run a host's agent against a cloud's internal API")
    agent.add_argument("--url", help="the cloud's URL (or ONESTACK_AGENT_URL)")
    agent.add_argument("--host", help="this host's name (default: the hostname)")
    agent.add_argument("--role", dest="roles", action="append", default=[],
                       help="a role to run (repeatable): a known role or a module path")
    agent.add_argument("--credential-file",
                       help="file holding the agent credential (or ONESTACK_AGENT_CREDENTIAL)")
    agent.add_argument("--binary", help="the service name this agent heartbeats as")
    agent.add_argument("--concurrency", type=int, default=4, help="tasks run at once")
    agent.add_argument("--lease-seconds", type=float, default=60.0)
    agent.add_argument("--long-poll", type=float, default=20.0,
                       help="seconds a claim waits in the API for work")
    agent.add_argument("--report-interval", type=float, default=10.0,
                       help="seconds between heartbeats")
    agent.add_argument("--availability-zone")
    agent.add_argument("--quiet", action="store_true", help="log warnings only")
    agent.set_defaults(func=cmd_agent)

    netagent = sub.add_parser("network-agent", help="(started by onestack up) this host's network agent")
    netagent.add_argument("--fd", type=int, required=True, help="the link to the API's process")
    netagent.set_defaults(func=cmd_network_agent)

    cred = sub.add_parser("agent-credential", help="credentials of agents on other hosts")
    cred_sub = cred.add_subparsers(dest="credential_command", required=True)
    cred_create = cred_sub.add_parser("create", help="a new credential for a host's agent")
    common(cred_create)
    cred_create.add_argument("--host", required=True, help="the agent's host name")
    cred_create.add_argument("--description")
    cred_list = cred_sub.add_parser("list", help="the credentials (never their secrets)")
    common(cred_list)
    cred_delete = cred_sub.add_parser("delete", help="revoke a credential")
    common(cred_delete)
    cred_delete.add_argument("id")
    for p in (cred_create, cred_list, cred_delete):
        p.set_defaults(func=cmd_agent_credential)

    from onestack.objectstore.ringcmd import add_parser as ring_parser

    ring_parser(sub, common)

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
