"""A small HTTP/1.1 server for boto3 clients: keep-alive, one thread per connection.

Every response goes out in one ``send`` on a TCP_NODELAY socket: otherwise Nagle plus the
client's delayed ACK add ~40 ms to every call and a benchmark measures that (DESIGN.md §5).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import time
import traceback
import uuid

from .responses import RESTJSON, App, Response

log = logging.getLogger(__name__)
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}
MAX_LINE = 65537
BUG = Response(500, RESTJSON, b'{"__type":"InternalFailure","message":"emulator bug"}',
               "x-amzn-ErrorType: InternalFailure\r\n")


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        app: App = self.server.app  # type: ignore[attr-defined]
        rfile = sock.makefile("rb", 65536)
        try:
            self._loop(sock, rfile, app)
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            try:
                rfile.close()
            except OSError:
                pass

    def _loop(self, sock, rfile, app: App) -> None:
        quickack = getattr(socket, "TCP_QUICKACK", 0)
        while not app.closing:
            line = rfile.readline(MAX_LINE)
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue
            parts = line.split()
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            method, target, version = (p.decode("latin-1") for p in parts)
            headers: dict[str, str] = {}
            while True:
                h = rfile.readline(MAX_LINE)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if quickack:
                # botocore sends headers and body in two writes without TCP_NODELAY, so the
                # body waits (Nagle) for our ACK of the headers, which Linux delays up to
                # 40 ms once the connection looks interactive. Acknowledge now.
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
                except OSError:
                    quickack = 0
            if headers.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = _read_chunked(rfile)
            else:
                length = int(headers.get("content-length") or 0)
                body = rfile.read(length) if length else b""
                if len(body) < length:
                    return
            conn = headers.get("connection", "").lower()
            keep = (conn != "close") if version == "HTTP/1.1" else (conn == "keep-alive")
            started = time.perf_counter()
            try:
                resp = app.handle(method, target, headers, body)
            except Exception:  # noqa: BLE001 - answer 500 and keep serving
                log.error("unhandled error:\n%s", traceback.format_exc())
                resp = BUG
            if resp.status == 0:  # faults.Reset: drop the connection, RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if app.log_requests:
                log.info("%s %s -> %s (%.1f ms)", method, target, resp.status,
                         (time.perf_counter() - started) * 1000)
            if app.closing:
                keep = False
            head = (f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}\r\n"
                    f"Content-Type: {resp.content_type}\r\nContent-Length: {len(resp.body)}\r\n"
                    f"x-amzn-RequestId: {uuid.uuid4()}\r\n{resp.headers}"
                    f"{'' if keep else 'Connection: close' + chr(13) + chr(10)}\r\n")
            sock.sendall(head.encode("latin-1") + resp.body)  # one send: see the docstring
            if not keep:
                return


def _read_chunked(rfile) -> bytes:
    chunks = []
    while True:
        size = int(rfile.readline(MAX_LINE).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline(MAX_LINE)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: App):
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
