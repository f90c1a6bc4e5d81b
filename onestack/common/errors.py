"""Errors raised by service logic, rendered by each API in its own wire shape.

Service code raises these; it never builds HTTP responses. Each service's API
module installs a renderer (see ``common.web``) that turns an ``ApiError`` into
that service's error body: Keystone's ``{"error": {...}}``, Nova's
``{"itemNotFound": {...}}``, Glance's ``{"message", "code", "title"}`` ...
"""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    status: int = 500
    # Nova/Cinder style fault key for this status (itemNotFound, badRequest, ...)
    fault: str = "computeFault"

    def __init__(
        self,
        message: str = "",
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        self.message = message or HTTPStatus(self.status).description or HTTPStatus(self.status).phrase
        self.title = title or HTTPStatus(self.status).phrase
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(ApiError):
    status = 400
    fault = "badRequest"


class ValidationError(BadRequest):
    """Input failed validation (Keystone calls this ValidationError too)."""


class Unauthorized(ApiError):
    status = 401
    fault = "unauthorized"


class AuthenticationRequired(Unauthorized):
    """401 from the authentication layer (a missing or invalid token, or one
    whose access rules do not allow the request). In OpenStack that answer
    comes from keystonemiddleware in front of the service, so every service
    renders it in Keystone's shape with a ``WWW-Authenticate`` header."""


class Forbidden(ApiError):
    status = 403
    fault = "forbidden"


class NotFound(ApiError):
    status = 404
    fault = "itemNotFound"


class MethodNotAllowed(ApiError):
    status = 405
    fault = "badMethod"


class NotAcceptable(ApiError):
    status = 406
    fault = "notAcceptable"


class Conflict(ApiError):
    status = 409
    fault = "conflictingRequest"


class Gone(ApiError):
    status = 410
    fault = "gone"


class PreconditionFailed(ApiError):
    status = 412
    fault = "preconditionFailed"


class PayloadTooLarge(ApiError):
    status = 413
    fault = "overLimit"


class UnsupportedMediaType(ApiError):
    status = 415
    fault = "unsupportedMediaType"


class RangeNotSatisfiable(ApiError):
    status = 416
    fault = "rangeNotSatisfiable"


class NotImplementedYet(ApiError):
    """The API exists in OpenStack but this cloud does not offer it (501)."""

    status = 501
    fault = "notImplemented"


class ServiceUnavailable(ApiError):
    status = 503
    fault = "serviceUnavailable"
