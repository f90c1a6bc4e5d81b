"""The metadata service behind Networking's metadata proxy: requests carry
the instance's id and project in ``X-Instance-ID`` / ``X-Tenant-ID``, signed
with the shared secret in ``X-Instance-ID-Signature`` (HMAC-SHA256 of the id,
as Neutron's proxy signs it); anything else is refused with Nova's errors.
The guest may post its encrypted password once (``.../password``)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.common.ids import utcnow
from onestack.compute.instance_metadata import PASSWORD_MAX, InstanceMetadata
from onestack.compute.models import Server
from onestack.compute.service._common import load
from onestack.compute.service.specs import instance_data

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService


@dataclass(frozen=True)
class Caller:
    instance_id: str | None
    tenant_id: str | None
    signature: str | None


def sign(secret: bytes, instance_id: str) -> str:
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def verify(svc: ComputeService, caller: Caller) -> tuple[str, str]:
    if caller.instance_id is None:
        raise BadRequest("X-Instance-ID header is missing from request.")
    if caller.signature is None:
        raise BadRequest("X-Instance-ID-Signature header is missing from request.")
    if caller.tenant_id is None:
        raise BadRequest("X-Tenant-ID header is missing from request.")
    expected = sign(svc.metadata_secret, caller.instance_id)
    if not hmac.compare_digest(expected, caller.signature):
        raise Forbidden("Invalid proxy request signature.")
    return caller.instance_id, caller.tenant_id


def _server(svc: ComputeService, instance_id: str, tenant_id: str) -> Server:
    with svc.db.read() as s:
        server = load(s, instance_id)
        if server is None or server.project_id != tenant_id:
            raise NotFound("The resource could not be found.")
        s.expunge(server)
        return server


def lookup(svc: ComputeService, caller: Caller, path: str) -> bytes | list[str] | None:
    instance_id, tenant_id = verify(svc, caller)
    server = _server(svc, instance_id, tenant_id)
    return InstanceMetadata(instance_data(server)).lookup(path)


def post_password(svc: ComputeService, caller: Caller, password: bytes) -> None:
    instance_id, tenant_id = verify(svc, caller)
    if len(password) > PASSWORD_MAX:
        raise BadRequest("Request is too large.")
    with svc.db.write() as s:
        server = load(s, instance_id, lock=True)
        if server is None or server.project_id != tenant_id:
            raise NotFound("The resource could not be found.")
        if server.password:
            raise Conflict("There was a conflict when trying to complete your request.")
        server.password = password.decode("utf-8", "replace")
        server.updated_at = utcnow()
