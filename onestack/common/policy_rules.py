"""oslo.policy's rule language: parsing a rule into a tree of checks.

* ``""``, ``@`` - always allowed; ``!`` - never allowed.
* ``rule:name`` - the named rule.
* ``role:name`` - the caller holds the role (case-insensitive).
* ``key:value`` - a credential (``user_id``, ``project_id``, ``system_scope``
  ...) equals the value; the value may be a target substitution
  ``%(target.project.id)s``, a quoted literal ``'all'``, ``True``/``False`` or a
  number. The left side may itself be a literal (``'admin':%(role.name)s``).
* ``and``, ``or``, ``not`` (``not`` binds tightest, then ``and``, then ``or``)
  and parentheses.
* More kinds registered by a service (``register_check``: Neutron's ``field:``).
* The legacy list-of-lists form: ``[["a", "b"], ["c"]]`` means ``(a and b) or c``.

A check is called with the target, the credentials and the evaluator of named
rules (``policy.Enforcer``), which ``rule:name`` calls back.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

LOG = logging.getLogger("onestack.common.policy")

Credentials = Mapping[str, Any]
Target = Mapping[str, Any]


class Evaluator(Protocol):
    """What ``rule:name`` needs: evaluate a named rule."""

    def _evaluate(self, name: str, target: Target, creds: Credentials, depth: int) -> bool: ...


# --------------------------------------------------------------------------- checks


class Check:
    """A node of a parsed rule."""

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        raise NotImplementedError


class TrueCheck(Check):
    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        return True

    def __str__(self) -> str:
        return "@"


class FalseCheck(Check):
    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        return False

    def __str__(self) -> str:
        return "!"


@dataclass
class NotCheck(Check):
    rule: Check

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        return not self.rule(target, creds, enforcer, depth)

    def __str__(self) -> str:
        return f"not {self.rule}"


@dataclass
class AndCheck(Check):
    rules: list[Check]

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        return all(rule(target, creds, enforcer, depth) for rule in self.rules)

    def __str__(self) -> str:
        return "(" + " and ".join(str(r) for r in self.rules) + ")"


@dataclass
class OrCheck(Check):
    rules: list[Check]

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        return any(rule(target, creds, enforcer, depth) for rule in self.rules)

    def __str__(self) -> str:
        return "(" + " or ".join(str(r) for r in self.rules) + ")"


@dataclass
class RuleCheck(Check):
    name: str

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        return enforcer._evaluate(self.name, target, creds, depth + 1)

    def __str__(self) -> str:
        return f"rule:{self.name}"


class _TargetView(Mapping[str, Any]):
    """What ``%(key)s`` sees: flat keys first, then dotted paths into nested dicts."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def __getitem__(self, key: str) -> Any:
        return _lookup(self._target, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)


def _lookup(data: Any, key: str) -> Any:
    """Resolve ``key`` in ``data``: as a whole, or split at dots (any split)."""
    if not isinstance(data, dict) and not isinstance(data, Mapping):
        raise KeyError(key)
    if key in data:
        return data[key]
    # Try the longest prefix that names a key, then descend with the rest,
    # so {"target.project": {"id": x}} and {"target": {"project.id": x}} work.
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in data:
            try:
                return _lookup(data[head], ".".join(parts[cut:]))
            except KeyError:
                continue
    raise KeyError(key)


def _substitute(template: str, target: Target) -> str | None:
    """``template % target``; None when a key is missing or the template is bad."""
    if "%" not in template:
        return template
    try:
        return template % _TargetView(target)
    except (KeyError, TypeError, ValueError):
        return None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _literal(text: str) -> tuple[bool, Any]:
    """``(True, value)`` if ``text`` is a Python literal (``'x'``, ``True``, ``5``)."""
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _same(left: Any, right: str) -> bool:
    """Does a credential / literal value equal the rule's (string) right side?"""
    if left is None:
        return False
    if isinstance(left, bool):
        lowered = right.lower()
        if lowered in ("true", "1"):
            return left
        if lowered in ("false", "0"):
            return not left
        return False
    if isinstance(left, list | tuple | set | frozenset):
        return any(_same(item, right) for item in left)
    return str(left) == right


def _match_credential(data: Any, key: str, right: str) -> bool:
    """Does the credential at ``key`` (dotted path; lists fan out) equal ``right``?"""
    if isinstance(data, list | tuple):
        return any(_match_credential(item, key, right) for item in data)
    if not isinstance(data, dict) and not isinstance(data, Mapping):
        return False
    if key in data:
        return _same(data[key], right)
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in data and _match_credential(data[head], ".".join(parts[cut:]), right):
            return True
    return False


@dataclass
class RoleCheck(Check):
    match: str

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        wanted = _substitute(self.match, target)
        if wanted is None:
            return False
        wanted = _unquote(wanted).lower()
        return any(str(role).lower() == wanted for role in creds.get("roles") or ())

    def __str__(self) -> str:
        return f"role:{self.match}"


@dataclass
class GenericCheck(Check):
    """``kind:match`` - a credential (or literal) compared with a value."""

    kind: str
    match: str

    def __post_init__(self) -> None:
        # Decided once at parse time: is the left side a literal or a credential?
        self._is_literal, self._literal_value = _literal(self.kind)
        self._substitutes = "%" in self.match

    def __call__(self, target: Target, creds: Credentials, enforcer: Evaluator, depth: int) -> bool:
        if self._substitutes:
            right = _substitute(self.match, target)
            if right is None:
                return False
        else:
            right = _unquote(self.match)
        if self._is_literal:
            value = self._literal_value
            if isinstance(value, str | int | float | bool):
                return _same(value, right)
            return False
        return _match_credential(creds, self.kind, right)

    def __str__(self) -> str:
        return f"{self.kind}:{self.match}"


# --------------------------------------------------------------------------- parser


class PolicySyntaxError(ValueError):
    pass


# Extra check kinds (``field:...`` for Neutron), as oslo.policy's ``register``.
_CHECK_KINDS: dict[str, Callable[[str, str], Check]] = {}


def register_check(kind: str, factory: Callable[[str, str], Check]) -> None:
    """Teach the rule language a check kind: ``kind:match`` -> ``factory(kind, match)``.

    Register before building the enforcers whose rules use it.
    """
    _CHECK_KINDS[kind] = factory


def _parse_check(text: str) -> Check:
    if text == "!":
        return FalseCheck()
    if text == "@":
        return TrueCheck()
    if ":" not in text:
        raise PolicySyntaxError(f"not a check: {text!r}")
    kind, match = text.split(":", 1)
    factory = _CHECK_KINDS.get(kind)
    if factory is not None:
        return factory(kind, match)
    if kind == "rule":
        return RuleCheck(match)
    if kind == "role":
        return RoleCheck(match)
    if kind == "http":
        raise PolicySyntaxError("http checks are not supported")
    if not kind:
        raise PolicySyntaxError(f"empty check kind: {text!r}")
    return GenericCheck(kind, match)


_KEYWORDS = ("and", "or", "not")


def _tokenize(rule: str) -> list[str]:
    """Split on whitespace, peeling parentheses off each word (as oslo.policy does)."""
    tokens: list[str] = []
    for word in rule.split():
        stripped = word.lstrip("(")
        tokens.extend("(" * (len(word) - len(stripped)))
        if not stripped:
            continue
        core = stripped.rstrip(")")
        closing = len(stripped) - len(core)
        if core:
            tokens.append(core.lower() if core.lower() in _KEYWORDS else core)
        tokens.extend(")" * closing)
    return tokens


class _Parser:
    """or_expr := and_expr ('or' and_expr)*; and_expr := unary ('and' unary)*;
    unary := 'not' unary | '(' or_expr ')' | check."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise PolicySyntaxError("unexpected end of rule")
        self.pos += 1
        return token

    def parse(self) -> Check:
        check = self._or()
        if self._peek() is not None:
            raise PolicySyntaxError(f"unexpected {self._peek()!r}")
        return check

    def _or(self) -> Check:
        rules = [self._and()]
        while self._peek() == "or":
            self._take()
            rules.append(self._and())
        return rules[0] if len(rules) == 1 else OrCheck(rules)

    def _and(self) -> Check:
        rules = [self._unary()]
        while self._peek() == "and":
            self._take()
            rules.append(self._unary())
        return rules[0] if len(rules) == 1 else AndCheck(rules)

    def _unary(self) -> Check:
        token = self._take()
        if token == "not":
            return NotCheck(self._unary())
        if token == "(":
            inner = self._or()
            if self._take() != ")":
                raise PolicySyntaxError("missing ')'")
            return inner
        if token in (")", "and", "or"):
            raise PolicySyntaxError(f"unexpected {token!r}")
        return _parse_check(token)


def _parse_list(rule: list[Any]) -> Check:
    if not rule:
        return TrueCheck()
    alternatives: list[Check] = []
    for inner in rule:
        if not inner:
            continue
        if isinstance(inner, str):
            inner = [inner]
        if not isinstance(inner, list) or not all(isinstance(x, str) for x in inner):
            raise PolicySyntaxError(f"bad list rule element: {inner!r}")
        checks = [_parse_check(x) for x in inner]
        alternatives.append(checks[0] if len(checks) == 1 else AndCheck(checks))
    if not alternatives:
        return FalseCheck()
    return alternatives[0] if len(alternatives) == 1 else OrCheck(alternatives)


def parse_rule(rule: str | list[Any]) -> Check:
    """Parse a rule string (or list-of-lists); raises ``PolicySyntaxError``."""
    if isinstance(rule, list):
        return _parse_list(rule)
    if not isinstance(rule, str):
        raise PolicySyntaxError(f"a rule is a string, not {type(rule).__name__}")
    tokens = _tokenize(rule)
    if not tokens:
        return TrueCheck()
    return _Parser(tokens).parse()


def _compile(name: str, rule: str | list[Any]) -> Check:
    try:
        return parse_rule(rule)
    except PolicySyntaxError as exc:
        LOG.error("policy rule %s = %r cannot be parsed (%s); it denies", name, rule, exc)
        return FalseCheck()


def _as_text(rule: str | list[Any]) -> str:
    if isinstance(rule, str):
        return rule
    try:
        check = parse_rule(rule)
    except PolicySyntaxError:
        return "!"
    return str(check)
