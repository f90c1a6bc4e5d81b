"""The shape of a token request (POST /v3/auth/tokens), checked as Keystone checks it
before anyone is authenticated: first its JSON schema for ``auth`` (``keystone/auth/
schema.py``: the types of ``identity``, ``password``, ``token`` and ``scope`` and what each
must name), then what ``AuthInfo`` requires (each method's payload, one kind of scope, a
trust id). Every problem is a 400 with Keystone's message (the first line of it: Keystone
appends the schema it failed); the credentials themselves are the methods' business.

Pure: no database, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onestack.common.errors import BadRequest, Unauthorized

AUTH_REQUIRED = "The request you have made requires authentication."

_ID_OR_NAME = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}

# Keystone's token_issue schema (only what it checks: types and required members).
TOKEN_ISSUE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "identity": {
            "type": "object",
            "properties": {
                "methods": {"type": "array", "items": {"type": "string"}},
                "password": {
                    "type": "object",
                    "properties": {
                        "user": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "name": {"type": "string"},
                                "password": {"type": "string"},
                                "domain": _ID_OR_NAME,
                            },
                        },
                    },
                },
                "token": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            },
            "required": ["methods"],
        },
        "scope": {
            "type": ["object", "string"],
            "properties": {
                "project": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "id": {"type": "string"}, "domain": _ID_OR_NAME},
                },
                "domain": _ID_OR_NAME,
                "OS-TRUST:trust": {"type": "object", "properties": {"id": {"type": "string"}}},
                "system": {"type": "object", "properties": {"all": {"type": "boolean"}}},
            },
        },
    },
    "required": ["identity"],
}

SCOPE_KINDS = ("project", "domain", "unscoped", "system", "OS-TRUST:trust")


@dataclass
class AuthRequest:
    """The whole ``auth`` object, checked; plugins may look at the scope."""

    body: dict[str, Any]
    methods: list[str]
    scope: dict[str, Any] | str | None
    # The HTTP request (``method``, ``url``, ``headers``) for methods that sign it (oauth1).
    http: Any = None


def expecting(attribute: str, target: str) -> BadRequest:
    return BadRequest(
        f"Expecting to find {attribute} in {target}. The server could not comply with the request "
        "since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    )


def parse_auth(body: Any, known_methods: Any) -> AuthRequest:
    """``body["auth"]`` checked in Keystone's order; ``known_methods`` are the method names
    this cloud authenticates with (any other is a 401, as Keystone's AuthMethodNotSupported)."""
    auth = body.get("auth") if isinstance(body, dict) else None
    if auth is not None:
        check_schema(auth, TOKEN_ISSUE)
        _check_id_or_name(auth)
    if not auth:
        raise expecting("auth", "request body")
    identity = auth["identity"]
    methods = list(dict.fromkeys(identity["methods"]))
    for name in methods:
        if name not in identity:
            raise expecting(name, "identity")
    for name in methods:
        if name not in known_methods:
            raise Unauthorized("Attempted to authenticate with an unsupported method.")
    for name in methods:
        if not isinstance(identity[name], dict):  # those the schema does not type
            raise BadRequest(f"Invalid input for field 'identity/{name}': {identity[name]!r} is not of type 'object'")
    scope = auth.get("scope")
    if "application_credential" in methods:
        if "scope" in auth:
            raise Unauthorized("Error authenticating with application credential: "
                               "Application credentials cannot request a scope.")
    elif "scope" in auth:
        _check_scope(scope)
    return AuthRequest(body=auth, methods=methods, scope=scope)


def _check_scope(scope: Any) -> None:
    """Exactly one kind of scope (AuthInfo._validate_and_normalize_scope_data)."""
    if isinstance(scope, str):
        kinds = ["unscoped"] if scope == "unscoped" else []
    else:
        kinds = [k for k in SCOPE_KINDS if k in scope]
    if len(kinds) != 1:
        raise expecting("system, project, domain, OS-TRUST:trust or unscoped", "scope")
    if kinds == ["OS-TRUST:trust"] and not scope["OS-TRUST:trust"].get("id"):
        raise expecting("trust_id", "trust")
    if kinds == ["project"]:
        project = scope["project"]
        if project.get("name") and "domain" not in project:
            raise expecting("domain", "project")


def _check_id_or_name(auth: dict[str, Any]) -> None:
    """What the schema cannot say: a user, project or domain names an id or a name."""
    user = auth["identity"].get("password", {}).get("user")
    if user is not None:
        _id_or_name(user, "identity/password/user")
        if user.get("domain") is not None:
            _id_or_name(user["domain"], "identity/password/user/domain")
    scope = auth.get("scope")
    if isinstance(scope, dict):
        project = scope.get("project")
        if project is not None:
            _id_or_name(project, "scope/project")
            if project.get("domain") is not None:
                _id_or_name(project["domain"], "scope/project/domain")
        if scope.get("domain") is not None:
            _id_or_name(scope["domain"], "scope/domain")


def _id_or_name(ref: dict[str, Any], field: str) -> None:
    if "id" not in ref and "name" not in ref:
        raise BadRequest(f"Invalid input for field {field}: id or name must be present.")


# --- the JSON schema subset Keystone's token schema uses --------------------------------

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
}


def check_schema(value: Any, schema: dict[str, Any], path: tuple[str, ...] = ()) -> None:
    """Raise the first error jsonschema would raise for ``value`` (type, properties in the
    schema's order, required members, array items), worded as Keystone words it."""
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_TYPES[n](value) for n in names):
            raise _invalid(path, f"{value!r} is not of type {', '.join(repr(n) for n in names)}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                check_schema(value[name], sub, (*path, name))
        for name in schema.get("required", ()):
            if name not in value:
                raise _invalid(path, f"{name!r} is a required property")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check_schema(item, schema["items"], (*path, str(i)))


def _invalid(path: tuple[str, ...], message: str) -> BadRequest:
    if not path:
        return BadRequest(message)
    return BadRequest(f"Invalid input for field '{'/'.join(path)}': {message}")
