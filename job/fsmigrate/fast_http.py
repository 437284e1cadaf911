"""A lean BatchWriteRecord sender built from botocore's own parts.

boto3's generic machinery (parameter walk, event hooks, shape-driven serializer, AWSRequest and
its email-based headers, urllib3's pool and http.client's response parsing) costs more CPU per
record than everything else on the write path. A BatchWriteRecord is one POST of a plain JSON
document, so it is sent like this:

* credentials, region, endpoint and signing name from a regular boto3 client (so
  ``AWS_ENDPOINT_URL``, profiles, instance roles and refresh all behave as with boto3);
* :class:`botocore.auth.SigV4Auth` signs it (botocore's signer, unchanged);
* connections are opened by urllib3 (TLS with botocore's context and boto3's CA bundle, as
  :class:`botocore.httpsession.URLLib3Session` does) and kept in a small pool; on them the
  request is written in one ``sendall`` and the response (status line, headers,
  ``Content-Length`` or chunked body) read back directly: HTTP/1.1 framing only;
* connection failures raise the botocore exceptions URLLib3Session raises for them
  (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError,
  SSLError), so the retry code classifies them as with boto3;
* a 200 whose ``Errors`` and ``UnprocessedEntries`` are empty is read with :func:`json.loads`;
  any other answer goes through botocore's own rest-json parser, so entries and error codes
  (``x-amzn-ErrorType`` header, then the body's ``code``/``__type``) come out exactly as boto3
  gives them, and a failed call raises the same :class:`botocore.exceptions.ClientError`.

Behind a proxy (``HTTPS_PROXY`` ...) BatchWriteRecord goes through the boto3 client, which knows
proxies. Everything else (PutRecord, BatchGetRecord, ``meta``) is the wrapped boto3 client's.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import ProxyConfiguration, create_urllib3_context, get_cert_path
from botocore.parsers import create_parser
from botocore.utils import get_environ_proxies
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError as URLLib3ConnectTimeoutError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import SSLError as URLLib3SSLError
from urllib3.util.ssl_match_hostname import CertificateError
from urllib3.util.wait import wait_for_read

OPERATION = "BatchWriteRecord"
_MAX_HEAD = 64 * 1024  # response status line and headers


class FastRuntimeClient:
    """A ``sagemaker-featurestore-runtime`` client whose ``batch_write_record`` skips boto3's
    generic request path; every other attribute is the boto3 client's."""

    def __init__(self, client, credentials, max_pool: int = 10, timeout: float = 30.0) -> None:
        self._client = client
        meta = client.meta
        model = meta.service_model
        if model.protocol != "rest-json":  # what the body and parser below assume
            raise ValueError(f"unexpected protocol {model.protocol!r} for {model.service_name}")
        op = model.operation_model(OPERATION)
        self._url = meta.endpoint_url.rstrip("/") + op.http["requestUri"]
        self._output_shape = op.output_shape
        self._outputs = frozenset(op.output_shape.members)
        self._signing_name = model.signing_name
        self._region = meta.region_name
        self._credentials = credentials
        self._parser = create_parser("rest-json")
        user_agent = f"fsmigrate-fast {meta.config.user_agent or ''}".strip()
        # the Host header as SigV4Auth signs it when none is set (no default port, no
        # userinfo): worked out once, not twice a request
        host = SigV4Auth(None, self._signing_name, self._region).headers_to_sign(
            _Signable(self._url, b"", {}))["host"]
        self._headers = {"Host": host, "Content-Type": "application/json",
                         "User-Agent": user_agent}
        self._start = f"POST {urlsplit(self._url).path or '/'} HTTP/1.1\r\n"
        # the proxies the boto3 client was built with (its config's, else the environment's)
        proxies = meta.config.proxies or get_environ_proxies(meta.endpoint_url)
        self._connections = None if ProxyConfiguration(proxies).proxy_url_for(self._url) else \
            _Connections(self._url, max_pool, timeout)
        self._signer: tuple[Any, SigV4Auth] | None = None  # (frozen credentials, their signer)

    def __getattr__(self, name: str) -> Any:  # only called for names not found above
        return getattr(self._client, name)

    def batch_write_record(self, Entries: list) -> dict[str, Any]:  # noqa: N803
        """Entries as dicts (boto3's form) or each as JSON text (built by Spark, see
        :mod:`fsmigrate.encode`): those are joined as they are."""
        if self._connections is None:  # a proxy: boto3's path
            if Entries and isinstance(Entries[0], str):
                Entries = [json.loads(e) for e in Entries]  # noqa: N806
            return self._client.batch_write_record(Entries=Entries)
        if Entries and isinstance(Entries[0], str):
            return self.send_body(('{"Entries":[' + ",".join(Entries) + "]}").encode())
        return self.send_body(json.dumps({"Entries": Entries}, separators=(",", ":")).encode())

    def _sign(self, body: bytes) -> _Signable:
        if self._credentials is None:
            raise NoCredentialsError()
        # frozen: a refresh between reading the key and the token can't mix two credentials
        frozen = self._credentials.get_frozen_credentials()
        signer = self._signer
        if signer is None or signer[0] != frozen:
            signer = self._signer = (frozen, SigV4Auth(frozen, self._signing_name, self._region))
        request = _Signable(self._url, body, dict(self._headers))
        signer[1].add_auth(request)
        return request

    def send_body(self, body: bytes) -> dict[str, Any]:
        """POST a ready BatchWriteRecord body; the parsed response (raises ClientError)."""
        request = self._sign(body)
        head = [self._start]
        for name, value in request.headers.items():
            head.append(f"{name}: {value}\r\n")
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        return self._parse(*self._connections.exchange("".join(head).encode("latin-1") + body))

    def _parse(self, status: int, headers: dict[str, str], data: bytes) -> dict[str, Any]:
        """The response as boto3 gives it; raises its ClientError for a failed call."""
        if status == 200:
            try:
                parsed = json.loads(data) if data else {}
            except ValueError:  # botocore's parser says what it makes of it
                parsed = None
            if isinstance(parsed, dict) and not any(parsed.values()) \
                    and parsed.keys() <= self._outputs:
                parsed["ResponseMetadata"] = {
                    "RequestId": headers.get("x-amzn-requestid", ""), "HTTPStatusCode": status,
                    "HTTPHeaders": headers, "RetryAttempts": 0}
                return parsed
        parsed = self._parser.parse({"status_code": status, "headers": headers, "body": data},
                                    self._output_shape)
        parsed["ResponseMetadata"]["RetryAttempts"] = 0  # botocore's retries are off
        if status >= 300:
            # the modeled class boto3 raises (ValidationError ...), else ClientError
            raise self._client.exceptions.from_code(parsed["Error"]["Code"])(parsed, OPERATION)
        return parsed

    def close(self) -> None:
        if self._connections is not None:
            self._connections.close()


class _Signable:
    """What :meth:`SigV4Auth.add_auth` reads and writes of a request (an AWSRequest's
    attributes), with plain-dict headers: AWSRequest's email-based ones cost more than the
    signing itself. The request is signed before Content-Length is set, as boto3 does."""

    __slots__ = ("url", "body", "headers", "method", "params", "context")

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.url, self.body, self.headers = url, body, headers
        self.method = "POST"
        self.params: dict = {}
        self.context: dict = {}


class _Incomplete(Exception):
    """The connection ended, or sent something else than an HTTP/1.x response."""


class _Connections:
    """Keep-alive connections to one endpoint: opened by urllib3 as URLLib3Session's pool opens
    them, reused last-in first-out, at most `max_pool` kept idle."""

    def __init__(self, url: str, max_pool: int, timeout: float) -> None:
        parts = urlsplit(url)
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.timeout = timeout
        self.max_pool = max_pool
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._context = create_urllib3_context() if self.https else None
        # boto3's trust store: AWS_CA_BUNDLE or the profile's ca_bundle, else botocore's default
        self._ca_certs = get_cert_path(botocore.session.Session().get_config_variable(
            "ca_bundle") or True) if self.https else None

    def _open(self) -> socket.socket:
        options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        try:
            if self.https:
                conn: HTTPConnection = HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, socket_options=options,
                    ssl_context=self._context, cert_reqs="CERT_REQUIRED",
                    ca_certs=self._ca_certs)
            else:
                conn = HTTPConnection(self.host, self.port, timeout=self.timeout,
                                      socket_options=options)
            conn.connect()
        # the mapping of botocore.httpsession.URLLib3Session.send (and of urllib3's pool, for
        # what its connections raise before the pool wraps it)
        except (URLLib3SSLError, ssl.SSLError, CertificateError) as exc:
            raise SSLError(endpoint_url=self.url, error=exc) from None
        except URLLib3ConnectTimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self.url, error=exc) from None
        except (NewConnectionError, socket.gaierror) as exc:
            raise EndpointConnectionError(endpoint_url=self.url, error=exc) from None
        except Exception as exc:  # noqa: BLE001 - as URLLib3Session: any other failure
            raise HTTPClientError(error=exc) from None
        sock = conn.sock
        conn.sock = None  # the socket is ours now
        return sock

    def _take(self) -> socket.socket:
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._open()
            # an idle connection with something to read was closed by the server (or is out
            # of step): urllib3's is_connection_dropped check
            if not wait_for_read(sock, timeout=0.0):
                return sock
            sock.close()

    def _give(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.max_pool:
                self._idle.append(sock)
                return
        sock.close()

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one request; (status, headers with lower-case names, body)."""
        sock = self._take()
        try:
            sock.sendall(request)
            status, headers, body, keep = _read_response(sock)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise ReadTimeoutError(endpoint_url=self.url, error=exc) from None
            if isinstance(exc, ssl.SSLError):
                raise SSLError(endpoint_url=self.url, error=exc) from None
            if isinstance(exc, (OSError, _Incomplete, ValueError)):  # ValueError: a bad number
                raise ConnectionClosedError(endpoint_url=self.url) from None
            raise
        if keep:
            self._give(sock)
        else:
            sock.close()
        return status, headers, body

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, keep the connection) of one HTTP/1.x response."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > _MAX_HEAD:
                raise _Incomplete("response headers too long")
            chunk = sock.recv(65536)
            if not chunk:
                raise _Incomplete("connection closed before the response")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
        lines = buf[:end].decode("latin-1").split("\r\n")
        buf = buf[end + 4:]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise _Incomplete(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(rest[:3])
        if not 100 <= status < 200:
            break  # an interim response (100 Continue ...) is followed by the real one
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if status in (204, 304):  # never a body
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, buf = _read_chunked(sock, buf)
    elif "content-length" in headers:
        size = int(headers["content-length"])
        parts = [buf]
        have = len(buf)
        while have < size:
            chunk = sock.recv(max(65536, size - have))
            if not chunk:
                raise _Incomplete("connection closed inside the response body")
            parts.append(chunk)
            have += len(chunk)
        body = b"".join(parts)
        buf, body = body[size:], body[:size]
    else:  # the body runs to the end of the connection
        parts = [buf]
        while chunk := sock.recv(65536):
            parts.append(chunk)
        body, buf, keep = b"".join(parts), b"", False
    if buf:  # more than one response: out of step, don't reuse
        keep = False
    return status, headers, body, keep


def _read_chunked(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    """A chunked body (RFC 9112 §7.1) from buf and then sock; (body, what follows it)."""

    def fill(need: int) -> None:
        nonlocal buf
        while len(buf) < need:
            chunk = sock.recv(65536)
            if not chunk:
                raise _Incomplete("connection closed inside a chunked body")
            buf += chunk

    def line() -> bytes:
        nonlocal buf
        while (i := buf.find(b"\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise _Incomplete("chunk header too long")
            fill(len(buf) + 1)
        out, buf = buf[:i], buf[i + 2:]
        return out

    parts = []
    while True:
        try:
            size = int(line().split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Incomplete("bad chunk size") from None
        if size == 0:
            while line():  # trailers, up to the empty line
                pass
            return b"".join(parts), buf
        fill(size + 2)
        parts.append(buf[:size])
        buf = buf[size + 2:]
