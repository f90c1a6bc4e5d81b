"""First-start set-up of Identity, and the cheap reconciliation of later starts.

First start (no ``default`` domain yet): fernet keys; domain ``default``
("Default"); roles admin, manager, member, reader (admin implies manager
implies member implies reader, as keystone-manage bootstrap makes them) and
service; project ``admin`` (the admin project) with user ``admin`` holding
admin on it and on the system; project ``demo`` with user ``demo`` holding
member; the region; the catalog. Every start: the catalog is reconciled with
the running services (new services added, endpoint URLs moved when the host or
port changed) and ``<state_dir>/clouds.yaml`` is (re)written with mode 0600.

A node that finds the database bootstrapped by another node joins it as a
member (``node.py``): it checks and adds what its own services need, and
never resets the bootstrap users' passwords or moves the catalog to itself.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

# Only the standard library at import time: ``onestack up`` imports this
# module first thing to start hashing the bootstrap passwords while the rest
# of the cloud (SQLAlchemy, the models ...) is still being imported.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.config import Settings
    from onestack.identity.core import Identity
    from onestack.identity.models import Project, Role, User

log = logging.getLogger(__name__)

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
INTERFACES = ("public", "internal", "admin")
ADMIN_CLOUD = "onestack-admin"
DEMO_CLOUD = "onestack"


def _role(s: Session, name: str) -> Role:
    from sqlalchemy import select

    from onestack.common.ids import new_id
    from onestack.identity.models import NULL_DOMAIN, Role

    role = s.scalars(select(Role).where(Role.name == name, Role.domain_id == NULL_DOMAIN)).first()
    if role is None:
        role = Role(id=new_id(), name=name, domain_id=NULL_DOMAIN, options={}, extra={})
        s.add(role)
    return role


def _imply(s: Session, prior: Role, implied: Role) -> None:
    from onestack.identity.models import ImpliedRole

    if s.get(ImpliedRole, (prior.id, implied.id)) is None:
        s.add(ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))


def _project(s: Session, name: str, description: str) -> Project:
    from sqlalchemy import select

    from onestack.common.ids import new_id
    from onestack.identity.models import Project

    proj = s.scalars(
        select(Project).where(Project.domain_id == DEFAULT_DOMAIN_ID, Project.name == name)
    ).first()
    if proj is None:
        proj = Project(
            id=new_id(), name=name, description=description, enabled=True,
            domain_id=DEFAULT_DOMAIN_ID, parent_id=DEFAULT_DOMAIN_ID, is_domain=False,
            options={}, extra={},
        )
        s.add(proj)
    return proj


def _user(s: Session, name: str, options: dict[str, Any]) -> User:
    """A bootstrap user (its password is added by ``_password``)."""
    from sqlalchemy import select

    from onestack.common.ids import new_id, utcnow
    from onestack.identity.models import User

    user = s.scalars(
        select(User).where(User.domain_id == DEFAULT_DOMAIN_ID, User.name == name)
    ).first()
    if user is None:
        user = User(
            id=new_id(), name=name, domain_id=DEFAULT_DOMAIN_ID, enabled=True,
            created_at=utcnow(), options=options, extra={}, failed_auth_count=0,
        )
        s.add(user)
    return user


def _password(s: Session, user: User, password_hash: str) -> None:
    from onestack.common.ids import utcnow
    from onestack.identity.models import Password
    from onestack.identity.passwords import current_password

    if current_password(s, user.id) is None:
        s.add(Password(user_id=user.id, password_hash=password_hash, created_at=utcnow(),
                       expires_at=None, self_service=False))


class Hashes:
    """The bootstrap passwords' hashes, computed once and only when asked for:
    the ones ``EarlyHashes`` began at start-up, else hashed now."""

    def __init__(self, identity: Identity, passwords: dict[str, str], early: EarlyHashes | None):
        self.identity, self.passwords, self.early = identity, passwords, early
        self._done: dict[str, str] | None = None

    def __call__(self) -> dict[str, str]:
        if self._done is None:
            if self.early is not None:
                self._done = self.early.hashes()
            else:
                self._done = _hash_all(self.identity, self.passwords)
        return self._done


def _hash_all(identity: Identity, passwords: dict[str, str]) -> dict[str, str]:
    """bcrypt releases the GIL: hash the bootstrap passwords side by side."""
    from onestack.identity.passwords import hash_password

    with ThreadPoolExecutor(max_workers=len(passwords)) as pool:
        futures = {k: pool.submit(hash_password, identity.settings, v) for k, v in passwords.items()}
        return {k: f.result() for k, f in futures.items()}


def _bcrypt(rounds: int, plain: str) -> tuple[str, bytes]:
    """What ``passwords.hash_password`` computes (bcrypt-sha256), importing
    nothing but bcrypt and the standard library (a test checks the two agree)."""
    import base64
    import hmac

    import bcrypt

    encoded = plain.encode("utf-8")
    salted = bcrypt.gensalt(rounds)
    salt = salted[-22:]
    digest = bcrypt.hashpw(base64.b64encode(hmac.digest(salt, encoded, "sha256")), salted)[-31:]
    hashed = f"$bcrypt-sha256$v=2,t=2b,r={rounds}${salt.decode('ascii')}${digest.decode('ascii')}"
    return hashed, encoded


class EarlyHashes:
    """Bootstrap passwords, hashed in the background from the start of
    ``onestack up`` (or at the latest when the Identity service is built),
    so that the slow hashes do not add to a first start.

    One thread, one hash after the other: bcrypt releases the GIL, so the
    hashes take the second core while start-up (one core, the GIL) goes on
    undisturbed. Two hashing threads on a 2-core machine finish the hashes
    sooner but slow start-up down by more than that."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.passwords = {"admin": secrets.token_urlsafe(18), "demo": secrets.token_urlsafe(18)}
        rounds = max(4, min(31, int(settings.identity.password_hash_rounds)))
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bootstrap-hash")
        self._futures: dict[str, Future[tuple[str, bytes]]] = {
            k: pool.submit(_bcrypt, rounds, v) for k, v in self.passwords.items()
        }
        pool.shutdown(wait=False)

    def hashes(self) -> dict[str, str]:
        from onestack.identity.passwords import verified_passwords

        ttl = self.settings.identity.password_check_cache_seconds
        out: dict[str, str] = {}
        for name, future in self._futures.items():
            hashed, encoded = future.result()
            if ttl > 0:  # as hash_password does: the first login skips bcrypt
                verified_passwords.remember(hashed, encoded, ttl)
            out[name] = hashed
        return out


_early_lock = threading.Lock()
_early: dict[Path, EarlyHashes] = {}


def _first_start_likely(settings: Settings) -> bool:
    from onestack.identity.node import MARKER

    state = settings.state_dir
    return not (state / "clouds.yaml").exists() and not (state / MARKER).exists()


def prestart(settings: Settings) -> None:
    """Called by ``onestack up`` before the heavy imports: begin hashing new
    bootstrap passwords if this looks like a first start."""
    if _first_start_likely(settings):
        with _early_lock:
            _early.setdefault(settings.state_dir, EarlyHashes(settings))


def start_early(identity: Identity) -> EarlyHashes | None:
    """The hashes begun by ``prestart``, or begin them now (first start only)."""
    settings = identity.settings
    with _early_lock:
        early = _early.pop(settings.state_dir, None)
    if not _first_start_likely(settings):
        return None
    return early if early is not None else EarlyHashes(settings)


def _grant(s: Session, kind: str, actor: str, target: str, role: Role) -> None:
    from onestack.identity.models import Assignment

    key = (kind, actor, target, role.id, False)
    if s.get(Assignment, key) is None:
        s.add(Assignment(type=kind, actor_id=actor, target_id=target, role_id=role.id, inherited=False))


def _read_clouds(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    import yaml  # only for a file that is there (edited, or from an older version)

    try:
        data = yaml.safe_load(text) or {}
        return dict(data.get("clouds") or {})
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        return {}


def _password_from(clouds: dict[str, Any], cloud: str) -> str | None:
    try:
        value = clouds[cloud]["auth"]["password"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) and value else None


def first_start(identity: Identity, s: Session, hashes: Callable[[], dict[str, str]]) -> None:
    """Everything a new cloud has; the passwords come last, so that their
    hashing (begun at start-up) overlaps with the rest. Ids are made here and
    nothing is flushed before it must be (a couple of flushes, not one per row)."""
    with s.no_autoflush:
        _first_start(identity, s, hashes)
    s.flush()


def _first_start(identity: Identity, s: Session, hashes: Callable[[], dict[str, str]]) -> None:
    from onestack.identity.models import (
        ROOT_DOMAIN,
        SYSTEM_TARGET,
        USER_PROJECT,
        USER_SYSTEM,
        Project,
    )

    s.add(Project(
        id=DEFAULT_DOMAIN_ID, name=DEFAULT_DOMAIN_NAME, description="The default domain",
        enabled=True, domain_id=ROOT_DOMAIN, parent_id=None, is_domain=True, options={}, extra={},
    ))
    admin, member, reader = _role(s, "admin"), _role(s, "member"), _role(s, "reader")
    manager = _role(s, "manager")
    _role(s, "service")
    admin_project = _project(s, "admin", "Bootstrap project for initializing the cloud.")
    demo_project = _project(s, "demo", "Demo project")
    admin_user = _user(s, "admin", {
        "ignore_change_password_upon_first_use": True,
        "ignore_password_expiry": True,
        "ignore_lockout_failure_attempts": True,
    })
    demo_user = _user(s, "demo", {
        "ignore_change_password_upon_first_use": True,
        "ignore_password_expiry": True,
    })
    s.flush()  # the rows the rest refer to (the flush has no relationships to order by)
    _imply(s, admin, manager)
    _imply(s, manager, member)
    _imply(s, member, reader)
    _grant(s, USER_PROJECT, admin_user.id, admin_project.id, admin)
    _grant(s, USER_SYSTEM, admin_user.id, SYSTEM_TARGET, admin)
    _grant(s, USER_PROJECT, demo_user.id, demo_project.id, member)
    reconcile_catalog(identity, s)
    done = hashes()
    _password(s, admin_user, done["admin"])
    _password(s, demo_user, done["demo"])


def reconcile_catalog(identity: Identity, s: Session, *, follow: bool = True) -> bool:
    """Services and endpoints for every running service; True if anything changed.

    ``follow``: existing endpoints move to this node's URL (else only missing
    ones are added: a member's start does not take the catalog over)."""
    from sqlalchemy import select

    from onestack.common.ids import new_id
    from onestack.identity.models import Endpoint, Region, Service

    settings = identity.settings
    base = settings.base_url
    changed = False
    if s.get(Region, settings.region) is None:
        s.add(Region(id=settings.region, description="", parent_region_id=None, extra={}))
        changed = True
    services = list(s.scalars(select(Service)))
    for entry in identity.cloud.catalog():
        svc = next(
            (x for x in services if x.type == entry.service_type and (x.extra or {}).get("name") == entry.name),
            None,
        )
        if svc is None:
            svc = Service(
                id=new_id(), type=entry.service_type, enabled=True,
                extra={"name": entry.name, "description": entry.description},
            )
            s.add(svc)
            s.flush()
            services.append(svc)
            changed = True
        url = entry.url_for(base)
        endpoints = list(s.scalars(select(Endpoint).where(Endpoint.service_id == svc.id)))
        for interface in INTERFACES:
            ep = next(
                (e for e in endpoints if e.interface == interface and e.region_id == settings.region), None
            )
            if ep is None:
                s.add(Endpoint(
                    id=new_id(), service_id=svc.id, interface=interface, url=url,
                    region_id=settings.region, enabled=True, extra={},
                ))
                changed = True
            elif follow and ep.url != url and (
                    urlparse(ep.url).path.rstrip("/") == urlparse(url).path.rstrip("/")):
                # Same service path, the host or port moved: follow it.
                ep.url = url
                changed = True
    return changed


def _yaml(data: dict[str, Any], indent: str = "") -> str:
    """Block-style YAML for nested dicts of strings and numbers, without a YAML
    library: every string is double-quoted the JSON way, which YAML reads as
    the same string (a test checks with a YAML parser)."""
    import json

    out = []
    for key, value in data.items():
        name = key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)
        if isinstance(value, dict):
            out.append(f"{indent}{name}:\n{_yaml(value, indent + '  ')}")
        else:
            out.append(f"{indent}{name}: {json.dumps(value)}\n")
    return "".join(out)


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _clouds_body(settings: Settings, passwords: dict[str, str]) -> str:
    """The clouds.yaml (below its stamp line) for these settings and passwords."""
    auth_url = settings.base_url + "/identity/v3"

    def cloud(user: str, project: str) -> dict[str, Any]:
        return {
            "auth": {
                "auth_url": auth_url,
                "username": user,
                "password": passwords[user],
                "project_name": project,
                "user_domain_name": DEFAULT_DOMAIN_NAME,
                "project_domain_name": DEFAULT_DOMAIN_NAME,
            },
            "region_name": settings.region,
            "identity_api_version": 3,
            "interface": "public",
        }

    return _yaml({"clouds": {ADMIN_CLOUD: cloud("admin", "admin"), DEMO_CLOUD: cloud("demo", "demo")}})


def _passwords_in(body: str) -> dict[str, str]:
    """The passwords in a body ``_clouds_body`` wrote, by user."""
    import json

    users = {f"  {ADMIN_CLOUD}:": "admin", f"  {DEMO_CLOUD}:": "demo"}
    found: dict[str, str] = {}
    user = None
    for line in body.splitlines():
        user = users.get(line, user)
        if user and line.startswith("      password: "):
            value = json.loads(line[len("      password: "):])
            if isinstance(value, str):
                found[user] = value
    return found


def write_clouds_yaml(identity: Identity, passwords: dict[str, str]) -> None:
    settings = identity.settings
    path = settings.state_dir / "clouds.yaml"
    body = _clouds_body(settings, passwords)
    text = f"{STAMP_PREFIX}{_digest(body)}\n{body}"
    tmp = path.with_suffix(".yaml.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# The first line of the clouds.yaml that ``onestack up`` writes: the digest of
# the rest, so that a restart can tell the file is still exactly what it wrote.
STAMP_PREFIX = "# Written by onestack up; edit freely (an edited file is re-read). sha256:"


def _digest(body: str) -> str:
    import hashlib

    return hashlib.sha256(body.encode()).hexdigest()


def _clouds_yaml_current(identity: Identity, text: str) -> bool:
    """True if ``text`` is the clouds.yaml this cloud would write now: our own
    unedited output (the digest matches) for the current URL and region."""
    first, _, body = text.partition("\n")
    if not first.startswith(STAMP_PREFIX) or first[len(STAMP_PREFIX):] != _digest(body):
        return False
    try:
        passwords = _passwords_in(body)
    except ValueError:
        return False
    if set(passwords) != {"admin", "demo"}:
        return False
    return body == _clouds_body(identity.settings, passwords)


def _nothing_to_do(identity: Identity) -> bool:
    """The restart check: bootstrapped, keys present, every running service in
    the catalog at its current URL, clouds.yaml as written. Plain SQL, so a
    restart compiles no ORM statement and imports no YAML parser."""
    from sqlalchemy import JSON, text

    from onestack.identity.node import follows_catalog, read_marker

    settings = identity.settings
    sqlite = identity.db.is_sqlite
    marker = read_marker(settings.state_dir)
    if marker is None and not sqlite:
        return False  # the reconcile decides this node's role and writes the marker
    try:
        clouds_text: str | None = (settings.state_dir / "clouds.yaml").read_text()
    except OSError:
        clouds_text = None
    owner = sqlite or (marker is not None and marker.here)
    if clouds_text is None:
        if owner:
            return False  # the owner's clouds.yaml was lost: new passwords
    elif not _clouds_yaml_current(identity, clouds_text):
        return False
    with identity.db.read() as s:
        def one(sql: str, **params: Any) -> bool:
            return s.execute(text(sql), params).first() is not None

        if not (
            one("SELECT 1 FROM project WHERE id = :id", id=DEFAULT_DOMAIN_ID)
            and one("SELECT 1 FROM identity_key WHERE kind = 'fernet'")
            and one("SELECT 1 FROM region WHERE id = :id", id=settings.region)
            and (marker is None or one('SELECT 1 FROM "user" WHERE id = :id', id=marker.cloud))
        ):
            return False
        catalog = text(
            "SELECT s.type, s.extra, e.interface, e.region_id, e.url "
            "FROM service s JOIN endpoint e ON e.service_id = s.id"
        ).columns(extra=JSON)  # decoded by the column type, on SQLite and PostgreSQL alike
        have = {
            (row[0], (row[1] or {}).get("name"), row[2], row[3], row[4])
            for row in s.execute(catalog)
        }
    base = settings.base_url
    if not follows_catalog(settings, owner):  # a member: present at whatever URL
        present = {key[:4] for key in have}
        return all(
            (entry.service_type, entry.name, interface, settings.region) in present
            for entry in identity.cloud.catalog()
            for interface in INTERFACES
        )
    return all(
        (entry.service_type, entry.name, interface, settings.region, entry.url_for(base)) in have
        for entry in identity.cloud.catalog()
        for interface in INTERFACES
    )


def wrap_keys(identity: Identity) -> None:
    """The token and credential keys are stored wrapped by the master key:
    wrap those an older version stored in the clear, in place; refuse to start
    (``MasterKeyMismatch``) if they were wrapped with another master key than
    this process has (a new state directory on a copied or shared database).
    One small query when there is nothing to do."""
    from sqlalchemy import text

    from onestack.common.masterkey import (
        FILE_NAME,
        MasterKeyMismatch,
        configured,
        is_wrapped,
        wrapped_fingerprint,
    )

    with identity.db.read() as s:
        rows = [(str(r[0]), int(r[1]), str(r[2])) for r in s.execute(text("SELECT kind, idx, key FROM identity_key"))]
    if not rows:
        return
    wrapped_with = sorted({fp for r in rows if (fp := wrapped_fingerprint(r[2]))})
    if wrapped_with and not configured(identity.settings):
        # Do not make a new master key that could never open these keys.
        raise MasterKeyMismatch(
            f"the database's token and credential keys are wrapped with a master key (fingerprint "
            f"{', '.join(wrapped_with)}) that this state directory does not have: copy the cloud's "
            f"{FILE_NAME} to {identity.settings.state_dir}, or give it with master_key_file or "
            f"ONESTACK_MASTER_KEY"
        )
    master = identity.master_key
    foreign = sorted({fp for r in rows if (fp := wrapped_fingerprint(r[2])) and fp != master.fingerprint})
    if foreign:
        raise MasterKeyMismatch(
            f"the database's token and credential keys were wrapped with another master key "
            f"(fingerprint {', '.join(foreign)}) than the one from {master.source} "
            f"(fingerprint {master.fingerprint}): give this cloud's master key with master_key_file "
            f"or ONESTACK_MASTER_KEY"
        )
    clear = [r for r in rows if not is_wrapped(r[2])]
    if not clear:
        return
    with identity.db.write() as s:
        for kind, idx, key in clear:
            s.execute(
                text("UPDATE identity_key SET key = :wrapped WHERE kind = :kind AND idx = :idx AND key = :key"),
                {"wrapped": master.wrap(key, f"identity_key/{kind}"), "kind": kind, "idx": idx, "key": key},
            )
    log.warning("wrapped %d identity keys that were stored in the clear with the master key from %s",
                len(clear), master.source)


def bootstrap(identity: Identity) -> None:
    """Idempotent: first start creates everything, later starts reconcile.

    A restart where nothing changed (the common case) only checks, with a few
    plain queries, and prunes old revocation events."""
    from sqlalchemy.orm import configure_mappers

    from onestack.identity import revoke

    wrap_keys(identity)
    if _nothing_to_do(identity):
        with identity.db.write() as s:
            revoke.prune(s, identity.tokens.revocations.lifetime())
    else:
        _reconcile(identity)
    # Mapper set-up otherwise falls on the first request that touches a model.
    configure_mappers()


def _admin_id(s: Session) -> str | None:
    from sqlalchemy import select

    from onestack.identity.models import User

    return s.scalars(
        select(User.id).where(User.domain_id == DEFAULT_DOMAIN_ID, User.name == "admin")
    ).first()


def _reconcile(identity: Identity) -> None:
    from sqlalchemy import select

    from onestack.identity import revoke
    from onestack.identity.models import Project, User
    from onestack.identity.node import Marker, follows_catalog, is_owner, read_marker, write_marker
    from onestack.identity.passwords import set_password

    settings = identity.settings
    path = settings.state_dir / "clouds.yaml"
    clouds = _read_clouds(path)
    early: EarlyHashes | None = getattr(identity, "bootstrap_hashes", None)
    known = _password_from(clouds, ADMIN_CLOUD) and _password_from(clouds, DEMO_CLOUD)
    if early is not None and not known:
        passwords = dict(early.passwords)
    else:
        early = None
        passwords = {
            "admin": _password_from(clouds, ADMIN_CLOUD) or secrets.token_urlsafe(18),
            "demo": _password_from(clouds, DEMO_CLOUD) or secrets.token_urlsafe(18),
        }
    keys = identity.tokens.keys
    hashes = Hashes(identity, passwords, early)
    with identity.db.write() as s:
        keys.ensure(s)
        fresh = s.get(Project, DEFAULT_DOMAIN_ID) is None
        if fresh:
            first_start(identity, s, hashes)
            log.info("identity bootstrapped: domain Default, admin and demo projects and users")
            owner = True
        else:
            own_file = bool(known) and _clouds_yaml_current(identity, path.read_text())
            owner = is_owner(sqlite=identity.db.is_sqlite, marker=read_marker(settings.state_dir),
                             cloud=_admin_id(s), own_clouds_yaml=own_file)
        if not fresh and owner and not known:
            # clouds.yaml was lost: give the bootstrap users new passwords.
            for name in ("admin", "demo"):
                user = s.scalars(
                    select(User).where(User.domain_id == DEFAULT_DOMAIN_ID, User.name == name)
                ).first()
                if user is not None:
                    set_password(identity, s, user, passwords[name], prehashed=hashes()[name])
        reconcile_catalog(identity, s, follow=follows_catalog(settings, owner))
        revoke.prune(s, identity.tokens.revocations.lifetime())
        cloud = _admin_id(s)
    identity.touch()
    if cloud is not None:
        write_marker(settings.state_dir, Marker(cloud=cloud, here=owner))
    if owner or known:
        write_clouds_yaml(identity, passwords)
    else:
        log.warning("joined a cloud another node bootstrapped: the bootstrap credentials are in "
                    "that node's clouds.yaml; the catalog stays at %s",
                    settings.public_url or "the URLs already in it")
