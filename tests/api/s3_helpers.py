"""The S3 listener in-process: a TestClient on the S3 app of a cloud made by
``make_swift``, EC2 credentials from Identity, and requests signed by botocore
(the real client library's signer)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from tests.api.objectstore_helpers import Swift

BASE = "http://127.0.0.1:8801"


def ec2_credentials(sw: Swift, who: str = "demo") -> dict[str, str]:
    api = sw.api
    token = api.token(who)
    r = api.client.get("/identity/v3/auth/tokens",
                       headers={"X-Auth-Token": token, "X-Subject-Token": token})
    body = r.json()["token"]
    r = api.client.post(f"/identity/v3/users/{body['user']['id']}/credentials/OS-EC2",
                        json={"tenant_id": body["project"]["id"]},
                        headers={"X-Auth-Token": token})
    assert r.status_code == 201, r.text
    cred: dict[str, str] = r.json()["credential"]
    return cred


class Signer(S3SigV4Auth):
    """botocore's S3 signer, with the payload hash the test says."""

    def __init__(self, credentials: Credentials, service: str, region: str,
                 payload: str) -> None:
        super().__init__(credentials, service, region)
        self._payload = payload

    def payload(self, request: Any) -> str:
        return self._payload


class S3:
    def __init__(self, sw: Swift, client: TestClient, cred: dict[str, str]) -> None:
        self.sw = sw
        self.client = client
        self.cred = cred

    def creds(self, cred: dict[str, str] | None = None) -> Credentials:
        c = cred or self.cred
        return Credentials(c["access"], c["secret"])

    def signed(self, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None, cred: dict[str, str] | None = None,
               payload: str | None = None, region: str = "us-east-1") -> dict[str, str]:
        req = AWSRequest(method=method, url=BASE + path, data=body, headers=headers or {})
        value = payload or hashlib.sha256(body).hexdigest()
        Signer(self.creds(cred), "s3", region, value).add_auth(req)
        return dict(req.headers.items())

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.request(method, path, content=body,
                                   headers=self.signed(method, path, body, headers, **kw))

    def presign(self, method: str, path: str, expires: int = 60,
                cred: dict[str, str] | None = None) -> str:
        req = AWSRequest(method=method, url=BASE + path)
        S3SigV4QueryAuth(self.creds(cred), "s3", "us-east-1", expires=expires).add_auth(req)
        return str(req.url)[len(BASE):]

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: bytes = b"", **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)


def make_s3(sw: Swift) -> Iterator[S3]:
    with TestClient(sw.service.s3_asgi(), base_url=BASE) as client:
        yield S3(sw, client, ec2_credentials(sw))


def error_body(r: Any, code: str, message: str, **fields: Any) -> bytes:
    """S3's exact error document for this response's request id."""
    rid = r.headers["x-amz-request-id"]
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{rid}</RequestId>{extra}</Error>"
            ).encode()


def q(key: str) -> str:
    return quote(key, safe="/~")
