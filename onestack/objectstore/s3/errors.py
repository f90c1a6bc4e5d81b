"""S3's errors: a code, an HTTP status, a message, and the XML body S3 sends.

``raise S3Error("NoSuchKey", Key=key)``: the status and message come from
S3's table below (the same statuses and texts S3 and Swift's s3api use);
extra fields become elements of the ``<Error>`` document after the request
id, as S3 shows them (``<Key>``, ``<BucketName>``, ``<AWSAccessKeyId>`` ...).
"""

from __future__ import annotations

from typing import Any

from onestack.objectstore.s3.xml import Element, render

# code: (status, default message)
CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied."),
    "AuthorizationHeaderMalformed": (
        400, "The authorization header is malformed; the authorization header requires three "
             "components: Credential, SignedHeaders, and Signature."),
    "AuthorizationQueryParametersError": (400, "Query-string authentication requires the "
                                               "X-Amz-Algorithm, X-Amz-Credential, "
                                               "X-Amz-Signature, X-Amz-Date, "
                                               "X-Amz-SignedHeaders, and X-Amz-Expires "
                                               "parameters."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available. The bucket "
                                 "namespace is shared by all users of the system. Please "
                                 "select a different name and try again."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket "
                                     "succeeded and you already own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object "
                            "size."),
    "IllegalVersioningConfigurationException": (400, "The Versioning configuration specified "
                                                     "in the request is invalid."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the "
                            "Content-Length HTTP header"),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our "
                                "records."),
    "InvalidArgument": (400, "Invalid Argument."),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidChunkSizeError": (403, "Only the last chunk is allowed to have a size less than "
                                   "8192 bytes"),
    "InvalidDigest": (400, "The Content-MD5 you specified was invalid."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidPart": (400, "One or more of the specified parts could not be found.  The part "
                         "may not have been uploaded, or the specified entity tag may not "
                         "match the part's entity tag."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. The parts list "
                              "must be specified in order by part number."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request."),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long."),
    "MalformedTrailerError": (400, "The request contained trailing data that was not "
                                   "well-formed or did not conform to our published schema."),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate "
                          "against our published schema"),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata "
                              "size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request body is empty."),
    "MissingSecurityHeader": (400, "Your request was missing a required header."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be invalid, "
                          "or the upload may have been aborted or completed."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NotImplemented": (501, "A header you provided implies functionality that is not "
                            "implemented."),
    "PreconditionFailed": (412, "At least one of the preconditions you specified did not "
                                "hold."),
    "QuotaExceeded": (403, "The quota of this account or container has been exceeded."),
    "RequestTimeout": (400, "Your socket connection to the server was not read from or "
                            "written to within the timeout period."),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current "
                                  "time is too large."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the "
                                   "signature you provided. Check your key and signing "
                                   "method."),
    "UserKeyMustBeSpecified": (400, "The bucket POST must contain the specified field name. "
                                    "If it is specified, please check the order of the "
                                    "fields."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not "
                                       "match what was computed."),
}


class S3Error(Exception):
    """An S3 error response; raise it anywhere below the app."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
                 **fields: Any) -> None:
        default_status, default_message = CODES.get(code, (500, ""))
        self.code = code
        self.status = status or default_status
        self.message = message if message is not None else default_message
        self.headers = headers or {}
        self.fields = {k: v for k, v in {**fields, **(extra or {})}.items() if v is not None}
        super().__init__(f"{self.status} {code}: {self.message}")

    def body(self, request_id: str) -> bytes:
        root = Element("Error")
        root.add("Code", self.code)
        root.add("Message", self.message)
        root.add("RequestId", request_id)
        for key, value in self.fields.items():
            root.add(key, value if isinstance(value, str) else str(value))
        return render(root, namespace=False)


def invalid_argument(name: str, value: str | None, message: str | None = None) -> S3Error:
    return S3Error("InvalidArgument", message, ArgumentName=name, ArgumentValue=value)
