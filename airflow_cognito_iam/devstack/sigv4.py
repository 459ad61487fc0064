"""Check an incoming request's SigV4 signature the way API Gateway (``AWS_IAM`` authorization) does.

The expected signature is recomputed with botocore's signer, an implementation independent of the
client's (requests-aws4auth), over the request exactly as it arrived: raw path, canonicalised query,
the headers the client says it signed, and the body received.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from airflow_cognito_iam.devstack.state import IssuedCredentials

#: API Gateway refuses a request whose X-Amz-Date is further than this from its clock.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTH_PARAM = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]*)")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)


class ApiGatewayError(Exception):
    """A refusal in API Gateway's shape: status, ``x-amzn-ErrorType`` and ``{"message": ...}``."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class IncomingRequest:
    """What the verifier needs from an HTTP request, as received on the wire."""

    method: str
    host: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class _ClientHeadersSigV4(SigV4Auth):
    """botocore's SigV4 restricted to the headers the client listed, since the server cannot know more."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name in self._signed:
            header_map[name] = request.headers.get(name, "")
        return header_map


def verify_sigv4(
    request: IncomingRequest,
    *,
    lookup: Callable[[str], IssuedCredentials | None],
    region: str,
    service: str,
    now: dt.datetime,
) -> IssuedCredentials:
    """Return the caller's credentials if the request is signed by them, else raise ApiGatewayError."""
    authorization = request.headers.get("authorization", "")
    if not authorization:
        raise ApiGatewayError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = authorization.strip().partition(" ")
    params = dict(_AUTH_PARAM.findall(rest))
    amz_date = request.headers.get("x-amz-date", "")
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if not amz_date:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if algorithm != "AWS4-HMAC-SHA256":
        missing.insert(0, "Only AWS4-HMAC-SHA256 signatures are accepted.")
    if missing:
        raise ApiGatewayError(403, "IncompleteSignatureException", " ".join(missing))

    scope = params["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise ApiGatewayError(
            403,
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.",
        )
    access_key_id, scope_date, scope_region, scope_service, _ = scope
    try:
        signed_at = dt.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ApiGatewayError(
            403, "IncompleteSignatureException", "X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z'."
        ) from exc
    if signed_at < now - MAX_CLOCK_SKEW:
        raise ApiGatewayError(
            403,
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_CLOCK_SKEW).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} - 5 min.)",
        )
    if signed_at > now + MAX_CLOCK_SKEW:
        raise ApiGatewayError(
            403,
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_CLOCK_SKEW).strftime(_AMZ_DATE)} ({now.strftime(_AMZ_DATE)} + 5 min.)",
        )
    if scope_date != amz_date[:8]:
        raise ApiGatewayError(
            403,
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if scope_region != region:
        raise ApiGatewayError(403, "InvalidSignatureException", "Credential should be scoped to a valid region.")
    if scope_service != service:
        raise ApiGatewayError(
            403, "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        )
    signed = [name.strip().lower() for name in params["SignedHeaders"].split(";") if name.strip()]
    if "host" not in signed:
        raise ApiGatewayError(
            403,
            "IncompleteSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    absent = [name for name in signed if name not in request.headers]
    if absent:
        raise ApiGatewayError(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)

    creds = lookup(access_key_id)
    token = request.headers.get("x-amz-security-token", "")
    if creds is None or not hmac.compare_digest(token.encode(), creds.session_token.encode()):
        raise ApiGatewayError(
            403, "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if now.timestamp() >= creds.expires_at:
        raise ApiGatewayError(403, "ExpiredTokenException", "The security token included in the request is expired")

    claimed_hash = request.headers.get("x-amz-content-sha256")
    if claimed_hash is not None and not hmac.compare_digest(
        claimed_hash.encode(), hashlib.sha256(request.body).hexdigest().encode()
    ):
        raise ApiGatewayError(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)

    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{request.host}{request.raw_path}",
        data=request.body,
        headers={name: request.headers[name] for name in signed},
        params=parse_qsl(request.raw_query, keep_blank_values=True),  # type: ignore[arg-type]
    )
    aws_request.context["timestamp"] = amz_date
    signer = _ClientHeadersSigV4(
        Credentials(access_key_id, creds.secret_key, creds.session_token), service, region, signed
    )
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
        raise ApiGatewayError(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)
    return creds
