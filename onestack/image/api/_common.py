"""What every image API module needs: the service object of the request."""

from __future__ import annotations

from starlette.requests import Request

from onestack.image.core import ImageService

IMG = "/v2/images/{image_id}"


def image_service(request: Request) -> ImageService:
    svc: ImageService = request.app.state.image
    return svc
