"""A Kinesis client that speaks CBOR the way the Java SDK v2 does (and so the KCL, Flink, Spark).

botocore speaks only JSON, so the CBOR tests sign requests with botocore's SigV4 signer and send
them with httpx, over HTTP/1.1, h2c with prior knowledge (what the SDK's Netty client does on an
http:// endpoint) or TLS with ALPN.

What the Java SDK sends (`SdkCborGenerator`, see shared/research/CLIENTS.md):
- maps and arrays of indefinite length (Jackson's CBOR generator streams them);
- blobs as byte strings;
- timestamps as tag 1 around integer epoch *milliseconds* (not RFC 8949's seconds).
What it reads back: the same, with timestamps read as a long of milliseconds. `decode` keeps
tag-1 values as `Millis` (an int) so tests compare them to the millisecond; a stock CBOR decoder
would read them as seconds and fail on year 55000.
"""

import datetime
import io

import cbor2
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, REGION, SECRET_KEY, TARGET_PREFIX

CBOR_CONTENT_TYPE = "application/x-amz-cbor-1.1"


class Millis(int):
    """An epoch-milliseconds timestamp read from a tag-1 CBOR value."""

    def to_datetime(self):
        return datetime.datetime.fromtimestamp(self / 1000, datetime.timezone.utc)


def millis(when):
    """Epoch milliseconds of a timezone-aware datetime, exactly (no float rounding)."""
    delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def encode(value):
    """CBOR bytes of `value` as the Java SDK writes them (indefinite-length containers)."""
    if isinstance(value, dict):
        return b"\xbf" + b"".join(encode(k) + encode(v) for k, v in value.items()) + b"\xff"
    if isinstance(value, (list, tuple)):
        return b"\x9f" + b"".join(encode(v) for v in value) + b"\xff"
    if isinstance(value, datetime.datetime):
        return cbor2.dumps(cbor2.CBORTag(1, millis(value)))
    return cbor2.dumps(value)


def decode(data):
    """A CBOR answer, with tag-1 timestamps kept as `Millis`."""
    decoder = cbor2.CBORDecoder(
        io.BytesIO(data), semantic_decoders={1: lambda value, immutable: Millis(value)}
    )
    return decoder.decode()


class KinesisCborError(Exception):
    def __init__(self, status, error_type, message, headers, body):
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers
        self.body = body


class CborResponse:
    def __init__(self, response):
        self.status = response.status_code
        self.headers = response.headers
        self.http_version = response.http_version
        self.raw = response.content
        self.body = decode(self.raw) if self.raw else None


class CborKinesis:
    """Signed CBOR calls to one endpoint. `transport`: "http1", "h2c" (prior knowledge, plain
    http://) or "h2" (TLS with ALPN; pass `verify` with the CA file)."""

    def __init__(self, endpoint, transport="http1", verify=True, region=REGION, timeout=60.0):
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.transport = transport
        self.http = httpx.Client(
            http1=transport != "h2c",
            http2=transport in ("h2c", "h2"),
            verify=verify,
            timeout=timeout,
        )

    def close(self):
        self.http.close()

    def signed_headers(self, op, body, content_type=CBOR_CONTENT_TYPE):
        headers = {"Content-Type": content_type, "X-Amz-Target": TARGET_PREFIX + op}
        request = AWSRequest(method="POST", url=self.endpoint + "/", data=body, headers=headers)
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesis", self.region).add_auth(request)
        return dict(request.headers.items())

    def raw(self, op, body, content_type=CBOR_CONTENT_TYPE):
        """POST already-encoded `body` for `op`; answers a CborResponse whatever the status."""
        headers = self.signed_headers(op, body, content_type)
        response = self.http.post(self.endpoint + "/", content=body, headers=headers)
        return CborResponse(response)

    def stream(self, op, **params):
        """A streamed call (SubscribeToShard): httpx's response context manager."""
        body = encode(params)
        return self.http.stream("POST", self.endpoint + "/", content=body, headers=self.signed_headers(op, body))

    def call(self, op, **params):
        """One operation; its decoded output (None for operations without one), or raises
        KinesisCborError with the error's type and message."""
        response = self.raw(op, encode(params))
        if response.status != 200:
            body = response.body or {}
            raise KinesisCborError(
                response.status,
                body.get("__type"),
                body.get("message", body.get("Message")),
                response.headers,
                body,
            )
        assert response.headers["content-type"] == CBOR_CONTENT_TYPE, response.headers
        return response.body
