"""Who signed an S3 request, and checking that they did.

SigV4 in an ``Authorization`` header or in the query string (a presigned
URL). The access key is looked up among Identity's EC2 credentials; the
signature is computed with its secret; the request then acts as the
credential's user on its project's account, with a token Identity issues
for it (cached per access key for Identity's token cache time, so that a
deleted credential or a removed role stops working as quickly as a revoked
token does). The request body is wrapped so that its declared SHA-256,
``aws-chunked`` chunk signatures and ``x-amz-checksum-*`` are checked while
it streams.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from onestack.objectstore.s3 import body as bodies
from onestack.objectstore.s3 import sigv4
from onestack.objectstore.s3.errors import S3Error, invalid_argument
from onestack.objectstore.s3.request import S3Request

MAX_EXPIRES = 604800
MUST_SIGN = ("x-amz-copy", "x-amz-acl", "x-amz-grant", "x-amz-meta")
CHECKSUMS = ("x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme",
             "x-amz-checksum-sha1", "x-amz-checksum-sha256")
QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                "X-Amz-SignedHeaders", "X-Amz-Expires")


@dataclass
class Signed:
    """What a request says about its signature (before it is checked)."""

    credential: sigv4.Credential
    signed_headers: list[str]
    signature: str
    request_time: str  # 20130524T000000Z
    payload_hash: str
    query: bool
    v2: bool = False  # Signature Version 2 (what boto3 presigns with by default)


def _server_time(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def parse(req: S3Request, location: str, skew: int, now: float | None = None) -> Signed:
    """The signature's parts, with the request time and scope checked."""
    now = time.time() if now is None else now
    params = req.params
    auth = req.headers.get("authorization", "")
    if "X-Amz-Credential" in params:
        return _parse_query(req, location, now)
    if auth.startswith(sigv4.ALGORITHM + " "):
        return _parse_header(req, auth, location, skew, now)
    if "AWSAccessKeyId" in params:
        return _parse_v2_query(req, now)
    if auth.startswith("AWS "):
        return _parse_v2_header(req, auth, skew, now)
    if auth:
        raise invalid_argument("Authorization", auth.split(" ", 1)[0],
                               "Unsupported Authorization Type")
    raise S3Error("AccessDenied")


def _check_scope(cred: sigv4.Credential, request_time: str, location: str, what: str,
                 error: str) -> None:
    if cred.date != request_time[:8]:
        raise S3Error(error, f'Invalid credential date "{cred.date}". This date is not the '
                             f'same as X-Amz-Date: "{request_time[:8]}".')
    if cred.region != location:
        raise S3Error(error, f"{what} the region '{cred.region}' is wrong; expecting "
                             f"'{location}'", Region=location)
    if cred.service != sigv4.SERVICE:
        raise S3Error(error, f'{what} incorrect service "{cred.service}". This endpoint '
                             f'belongs to "{sigv4.SERVICE}".')
    if cred.terminal != sigv4.TERMINAL:
        raise S3Error(error, f'{what} incorrect terminal "{cred.terminal}". This endpoint '
                             f'uses "{sigv4.TERMINAL}".')


def _parse_header(req: S3Request, auth: str, location: str, skew: int, now: float) -> Signed:
    fields: dict[str, str] = {}
    for part in auth[len(sigv4.ALGORITHM) + 1:].split(","):
        key, _, value = part.strip().partition("=")
        fields[key.strip()] = value.strip()
    if not all(fields.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise S3Error("AuthorizationHeaderMalformed")
    cred = sigv4.parse_credential(fields["Credential"])
    if cred is None:
        raise S3Error("AuthorizationHeaderMalformed",
                      "The authorization header is malformed; the Credential is mal-formed; "
                      'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    amz = req.headers.get("x-amz-date")
    ts: float | None
    if amz:
        ts = sigv4.parse_amz_date(amz)
    else:
        ts = _http_date(req.headers.get("date", ""))
    if ts is None or ts < 0:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or "
                                      "x-amz-date header")
    request_time = sigv4.amz_date(ts)
    if abs(ts - now) > skew:
        raise S3Error("RequestTimeTooSkewed", RequestTime=amz or req.headers.get("date"),
                      ServerTime=_server_time(now), MaxAllowedSkewMilliseconds=skew * 1000)
    _check_scope(cred, request_time, location, "The authorization header is malformed;",
                 "AuthorizationHeaderMalformed")
    payload = req.headers.get("x-amz-content-sha256")
    if not payload:
        raise S3Error("InvalidRequest", "Missing required header for this request: "
                                        "x-amz-content-sha256")
    if payload not in (sigv4.UNSIGNED, *sigv4.STREAMING_VALUES) and \
            not sigv4.looks_like_sha256(payload):
        raise invalid_argument(
            "x-amz-content-sha256", payload,
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or "
            "a valid sha256 value.")
    signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip()]
    return Signed(cred, signed, fields["Signature"], request_time, payload, query=False)


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _parse_query(req: S3Request, location: str, now: float) -> Signed:
    params = req.params
    if params.get("X-Amz-Algorithm") != sigv4.ALGORITHM:
        if "X-Amz-Algorithm" not in params:
            raise S3Error("AuthorizationQueryParametersError", _query_params_message())
        raise S3Error("AuthorizationQueryParametersError",
                      'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    if not all(params.get(k) for k in QUERY_PARAMS):
        raise S3Error("AuthorizationQueryParametersError", _query_params_message())
    cred = sigv4.parse_credential(params["X-Amz-Credential"])
    if cred is None:
        raise S3Error("AuthorizationQueryParametersError",
                      "Error parsing the X-Amz-Credential parameter; the Credential is "
                      'mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    request_time = params["X-Amz-Date"]
    ts = sigv4.parse_amz_date(request_time)
    if ts is None:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    try:
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires should be a number") from None
    if expires < 0:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires must be less than a week (in seconds); that is, the given "
                      "X-Amz-Expires must be less than 604800 seconds")
    _check_scope(cred, request_time, location, "Error parsing the X-Amz-Credential parameter;",
                 "AuthorizationQueryParametersError")
    if ts - now > 900:
        raise S3Error("AccessDenied", "Request is not valid yet")
    if ts + expires < now:
        raise S3Error("AccessDenied", "Request has expired",
                      extra={"X-Amz-Expires": str(expires), "Expires": _server_time(ts + expires),
                             "ServerTime": _server_time(now)})
    signed = [h.strip().lower() for h in params["X-Amz-SignedHeaders"].split(";") if h.strip()]
    payload = req.headers.get("x-amz-content-sha256") or sigv4.UNSIGNED
    return Signed(cred, signed, params["X-Amz-Signature"], request_time, payload, query=True)


def _v2(access: str, signature: str, request_time: str, query: bool) -> Signed:
    cred = sigv4.Credential(access, request_time[:8], "", "", "")
    return Signed(cred, [], signature, request_time, sigv4.UNSIGNED, query=query, v2=True)


def _parse_v2_query(req: S3Request, now: float) -> Signed:
    params = req.params
    access, expires, signature = (params.get(k) for k in ("AWSAccessKeyId", "Expires",
                                                          "Signature"))
    if not access or not expires or not signature:
        raise S3Error("AccessDenied")
    try:
        at = float(expires)
    except ValueError:
        raise S3Error("AccessDenied") from None
    if at < now:
        raise S3Error("AccessDenied", "Request has expired",
                      extra={"Expires": _server_time(at), "ServerTime": _server_time(now)})
    if at >= 2 ** 31:
        raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {expires}")
    return _v2(access, signature, sigv4.amz_date(now), query=True)


def _parse_v2_header(req: S3Request, auth: str, skew: int, now: float) -> Signed:
    access, sep, signature = auth[4:].rpartition(":")
    if not sep or not access:
        raise S3Error("AccessDenied")
    amz = req.headers.get("x-amz-date")
    date = amz or req.headers.get("date")
    ts = _http_date(date or "")
    if ts is None and amz:
        ts = sigv4.parse_amz_date(amz)
    if ts is None or ts < 0:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or "
                                      "x-amz-date header")
    if abs(ts - now) > skew:
        raise S3Error("RequestTimeTooSkewed", RequestTime=date, ServerTime=_server_time(now),
                      MaxAllowedSkewMilliseconds=skew * 1000)
    return _v2(access, signature, sigv4.amz_date(ts), query=False)


# sub-resources a Signature Version 2 signs
V2_SUBRESOURCES = frozenset({
    "acl", "delete", "lifecycle", "location", "logging", "notification", "partNumber",
    "policy", "publicAccessBlock", "requestPayment", "torrent", "uploads", "uploadId",
    "versionId", "versioning", "versions", "website", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires", "cors", "tagging", "restore", "object-lock"})


def v2_string_to_sign(req: S3Request, signed: Signed) -> str:
    h = req.headers
    lines = [req.method, (h.get("content-md5") or "").strip(), (h.get("content-type") or "").strip()]
    amz: dict[str, list[str]] = {}
    for name, value in req.raw_headers:
        key = name.strip().lower()
        if key.startswith("x-amz-"):
            amz.setdefault(key, []).append(value.strip())
    if signed.query:
        lines.append(req.params.get("Expires", ""))
    else:
        lines.append("" if "x-amz-date" in amz else (h.get("date") or ""))
    lines.extend(f"{k}:{','.join(v)}" for k, v in sorted(amz.items()))
    resource = req.raw_path
    subresources = sorted((k, v) for k, v in req.params.items() if k in V2_SUBRESOURCES)
    if subresources:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
    lines.append(resource)
    return "\n".join(lines)


def _query_params_message() -> str:
    return ("Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters.")


def canonical(req: S3Request, signed: Signed) -> str:
    """The canonical request (SignatureDoesNotMatch if a signed header is missing,
    AccessDenied if a header S3 wants signed is not)."""
    names = set(signed.signed_headers)
    for name, _value in req.raw_headers:
        key = name.lower()
        if key.startswith(MUST_SIGN) and key not in names:
            raise S3Error("AccessDenied", "There were headers present in the request which "
                                          "were not signed", HeadersNotSigned=key)
    block = sigv4.canonical_headers(req.raw_headers, signed.signed_headers)
    if block is None:
        raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=signed.credential.access,
                      SignatureProvided=signed.signature)
    return sigv4.canonical_request(req.method, req.path, req.param_list, block,
                                   signed.signed_headers, signed.payload_hash)


def check_signature(req: S3Request, signed: Signed, secret: str) -> bytes:
    """The signing key, if the signature is right; SignatureDoesNotMatch if not."""
    if signed.v2:
        sts = v2_string_to_sign(req, signed)
        digest = hmac.new(secret.encode("utf-8"), sts.encode("utf-8"), hashlib.sha1).digest()
        if not sigv4.equal(base64.b64encode(digest).decode("ascii"), signed.signature):
            raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=signed.credential.access,
                          StringToSign=sts, SignatureProvided=signed.signature,
                          StringToSignBytes=" ".join(f"{b:02x}" for b in sts.encode()))
        return b""
    cr = canonical(req, signed)
    sts = sigv4.string_to_sign(signed.request_time, signed.credential.scope, cr)
    key = sigv4.signing_key(secret, signed.credential.date, signed.credential.region)
    if not sigv4.equal(sigv4.sign(key, sts), signed.signature):
        raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=signed.credential.access,
                      StringToSign=sts, SignatureProvided=signed.signature,
                      StringToSignBytes=" ".join(f"{b:02x}" for b in sts.encode()),
                      CanonicalRequest=cr,
                      CanonicalRequestBytes=" ".join(f"{b:02x}" for b in cr.encode()))
    return key


def _checksum(req: S3Request) -> tuple[str | None, str | None, Any]:
    """(header, trailer, hasher) of the request's ``x-amz-checksum-*``, validated."""
    headers = [k for k in req.headers if k.startswith("x-amz-checksum-")
               and k not in ("x-amz-checksum-algorithm", "x-amz-checksum-type")]
    trailer_value = req.headers.get("x-amz-trailer", "").strip()
    trailers = [t.strip().lower() for t in trailer_value.rstrip(",").split(",")] \
        if trailer_value else []
    for name in headers + trailers:
        if name not in CHECKSUMS:
            raise S3Error("InvalidRequest",
                          "The algorithm type you specified in x-amz-checksum- header is "
                          "invalid." if name in headers else
                          "The value specified in the x-amz-trailer header is not supported")
    if len(headers) + len(trailers) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header"
                      + (". Multiple checksum Types are not allowed." if not trailers else ""))
    header = headers[0] if headers else None
    trailer = trailers[0] if trailers else None
    hasher = None
    if header or trailer:
        hasher = bodies.checksum_hasher(header or trailer or "")
        if header and bodies.decode_checksum(hasher, req.headers.get(header)) is None:
            raise S3Error("InvalidRequest", f"Value for {header} header is invalid.")
    algorithm = req.headers.get("x-amz-sdk-checksum-algorithm")
    if algorithm:
        if hasher is None:
            raise S3Error("InvalidRequest", "x-amz-sdk-checksum-algorithm specified, but no "
                                            "corresponding x-amz-checksum-* or x-amz-trailer "
                                            "headers were found.")
        if algorithm.lower() != hasher.name:
            raise S3Error("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is "
                                            "invalid.")
    return header, trailer, hasher


def wrap_body(req: S3Request, signed: Signed, key: bytes) -> None:
    """Decode and check the body as it streams; sets ``req.content_length``."""
    length_text = req.headers.get("content-length")
    if length_text is not None:
        try:
            length = int(length_text)
        except ValueError:
            raise invalid_argument("Content-Length", length_text) from None
        if length < 0:
            raise invalid_argument("Content-Length", length_text)
        req.content_length = length
    if req.method not in ("PUT", "POST"):
        return
    verify_checksum = req.method == "PUT" or "delete" in req.params
    header, trailer, hasher = _checksum(req)
    payload = req.headers.get("x-amz-content-sha256", "") if signed.v2 else signed.payload_hash
    if payload in sigv4.STREAMING_VALUES:
        if signed.v2:
            raise S3Error("InvalidRequest", "aws-chunked uploads need AWS4-HMAC-SHA256.")
        if signed.query:
            raise S3Error("XAmzContentSHA256Mismatch", ClientComputedContentSHA256=payload)
        if "ECDSA" in payload:
            raise S3Error("NotImplemented", f"Don't know how to validate {payload} streams")
        decoded = req.headers.get("x-amz-decoded-content-length")
        try:
            decoded_length = int(decoded or "")
        except ValueError:
            raise S3Error("MissingContentLength") from None
        if decoded_length < 0:
            raise invalid_argument("x-amz-decoded-content-length", decoded)
        names: set[str] = set()
        if payload == sigv4.STREAMING_TRAILER:
            names.add("x-amz-trailer-signature")
        if trailer:
            names.add(trailer)
        signer = None if payload == sigv4.STREAMING_UNSIGNED_TRAILER else bodies.ChunkSigner(
            key, signed.request_time, signed.credential.scope, signed.signature)
        found: dict[str, str] = {}
        stream = bodies.aws_chunked(req.body, decoded_length, signer, names, found)
        encodings = [e.strip() for e in req.headers.get("content-encoding", "").split(",")
                     if e.strip() and e.strip() != "aws-chunked"]
        if encodings:
            req.headers["Content-Encoding"] = ", ".join(encodings)
        else:
            del req.headers["content-encoding"]
        req.content_length = decoded_length
        source = header or trailer
        if hasher is not None and source and verify_checksum:
            where = found if trailer else req.headers
            req.body = bodies.verified(stream, decoded_length, None, (source, hasher),
                                       lambda: where.get(source or ""))
        else:
            req.body = stream
        return
    if trailer:
        raise S3Error("MalformedTrailerError")
    sha256 = payload if sigv4.looks_like_sha256(payload) else None
    checksum = (header, hasher) if header and hasher is not None and verify_checksum else None
    if sha256 is None and checksum is None:
        return
    if req.content_length is None:
        return  # no length: Swift answers 411 (MissingContentLength)
    value = req.headers.get(header) if header else None
    req.body = bodies.verified(req.body, req.content_length, sha256, checksum, lambda: value)
