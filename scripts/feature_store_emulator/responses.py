"""HTTP requests in, operations out (moto's ``responses.py``): one function per operation
parses its parameters, calls the backend (models.py) and renders the answer.

Errors are rendered the way botocore's parsers read them: rest-json takes the code from the
``x-amzn-ErrorType`` header (then the body's ``__type``/``code``), JSON 1.1 from the body's
``__type``; both take ``message``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from . import admin, urls
from .exceptions import ApiError, validation
from .faults import Faults
from .models import FeatureStoreBackend
from .stats import Stats
from .utils import DEFAULT_REGION

JSON11 = "application/x-amz-json-1.1"
RESTJSON = "application/json"
CREDENTIAL_RE = re.compile(r"Credential=([^/,]*)/[^/,]*/([^/,]*)/")
SIGV4 = "AWS4-HMAC-SHA256"


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes
    headers: str = ""  # extra header lines, each ending in CRLF


def render_json(status: int, obj: Any, content_type: str = RESTJSON,
                headers: str = "") -> Response:
    body = b"" if obj is None else json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, content_type, body, headers)


def rest_error(err: ApiError) -> Response:
    return render_json(err.status, {"__type": err.code, "message": err.message}, RESTJSON,
                       f"x-amzn-ErrorType: {err.code}\r\n")


def json11_error(err: ApiError) -> Response:
    return render_json(err.status, {"__type": err.code, "message": err.message}, JSON11)


def _first(query: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    return (query.get(key) or [default])[0]


class App:
    """Routes one request to its operation; counts it; applies injected faults (runtime)."""

    def __init__(self, backend: FeatureStoreBackend, log_requests: bool = False):
        self.backend = backend
        self.faults = Faults()
        # per batch entry: hand it back unprocessed? (an injected fault)
        self.unprocessed_get = partial(self.faults.draw, "unprocessed_get_rate")
        self.unprocessed_write = partial(self.faults.draw, "unprocessed_rate")
        self.stats = Stats()
        self.log_requests = log_requests
        self.closing = False
        self.runtime_ops: dict[str, Callable[[str, str | None, Any], Any]] = {
            "PutRecord": self.put_record, "GetRecord": self.get_record,
            "DeleteRecord": self.delete_record, "ListRecords": self.list_records,
            "BatchGetRecord": self.batch_get_record, "BatchWriteRecord": self.batch_write_record,
        }

    def handle(self, method: str, target: str, headers: dict[str, str],
               body: bytes) -> Response:
        path, _, query = target.partition("?")
        if path.startswith("/_emulator/"):
            return render_json(*admin.handle(self.backend, self.faults, self.stats, method,
                                             path, body))
        control = urls.is_control(method, path)
        if not headers.get("authorization", "").startswith(SIGV4):
            message = f"Missing or unsupported Authorization header (expected {SIGV4})"
            if control:
                return json11_error(ApiError("AccessDeniedException", message, 403))
            return rest_error(ApiError("AccessForbidden", message, 403))
        m = CREDENTIAL_RE.search(headers["authorization"])
        region = m.group(2) if m and m.group(2) else DEFAULT_REGION  # the SigV4 scope's
        # who called (stats only): the key id, and whether a session token came with it
        caller = (m.group(1) if m else "", "x-amz-security-token" in headers)
        if control:
            return self.control(headers.get("x-amz-target", ""), region, body, caller)
        return self.runtime(method, path, query, region, body, caller)

    # ---- control plane (JSON 1.1): the request body is the backend's input as is ----------

    def control(self, amz_target: str, region: str, body: bytes,
                caller: tuple[str, bool] | None = None) -> Response:
        op = urls.control_op(amz_target)
        if op is None:
            return json11_error(ApiError("UnknownOperationException",
                                         f"Unsupported operation {amz_target!r}", 400))
        self.stats.request(op, caller)
        try:
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                raise ApiError("SerializationException", "Request body is not JSON",
                               400) from None
            if not isinstance(req, dict):
                raise ApiError("SerializationException", "Request body must be an object", 400)
            handler = getattr(self.backend, _snake(op))
            out = handler(region, req)
        except ApiError as err:
            if err.code == "ValidationError":  # shared checks use the runtime's code
                err = ApiError("ValidationException", err.message, 400)
            self.stats.error(op, err.code)
            return json11_error(err)
        return render_json(200, out, JSON11)

    # ---- runtime (rest-json) ---------------------------------------------------------------

    def runtime(self, method: str, path: str, query: str, region: str,
                body: bytes, caller: tuple[str, bool] | None = None) -> Response:
        op, name = urls.runtime_route(method, path)
        if op is None:
            return rest_error(ApiError("UnknownOperationException",
                                       f"No operation for {method} {path}", 404))
        stats, faults = self.stats, self.faults
        stats.request(op, caller)
        delay = faults.latency()
        if delay:
            time.sleep(delay)
        injected = faults.check()
        if injected is not None:
            stats.error(op, injected.code)
            return rest_error(injected)
        try:
            if method in ("PUT", "POST"):
                try:
                    params = json.loads(body) if body else {}
                except ValueError:
                    raise validation("Request body is not valid JSON") from None
                if not isinstance(params, dict):
                    raise validation("Request body must be a JSON object")
            else:
                params = parse_qs(query, keep_blank_values=True)
            out = self.runtime_ops[op](region, name, params)
        except ApiError as err:
            stats.error(op, err.code)
            return rest_error(err)
        return render_json(200, out)

    def put_record(self, region: str, name: str | None, req: dict) -> None:
        self.backend.put_record(region, name, req.get("Record"), req.get("TargetStores"),
                                req.get("TtlDuration"))
        self.stats.add("PutRecord", "records")

    def get_record(self, region: str, name: str | None, q: dict[str, list[str]]) -> dict:
        out = self.backend.get_record(region, name, _first(q, "RecordIdentifierValueAsString"),
                                      q.get("FeatureName"),
                                      _first(q, "ExpirationTimeResponse", "Disabled"))
        if out.get("Record"):
            self.stats.add("GetRecord", "records")
        return out

    def delete_record(self, region: str, name: str | None, q: dict[str, list[str]]) -> None:
        self.backend.delete_record(region, name, _first(q, "RecordIdentifierValueAsString"),
                                   _first(q, "EventTime"), q.get("TargetStores"),
                                   _first(q, "DeletionMode"))
        self.stats.add("DeleteRecord", "records")

    def list_records(self, region: str, name: str | None, req: dict) -> dict:
        out = self.backend.list_records(region, name, req.get("MaxResults"),
                                        req.get("NextToken"),
                                        bool(req.get("IncludeSoftDeletedRecords")))
        self.stats.add("ListRecords", "records", len(out["RecordIdentifiers"]))
        return out

    def batch_get_record(self, region: str, _name: str | None, req: dict) -> dict:
        idents = req.get("Identifiers")
        out = self.backend.batch_get_record(region, idents, req.get("ExpirationTimeResponse"),
                                            self.unprocessed_get)
        ids = "RecordIdentifiersValueAsString"
        self._count_batch("BatchGetRecord", out["Errors"],
                          identifiers=sum(len(i[ids]) for i in idents),
                          records=len(out["Records"]),
                          unprocessed=sum(len(u[ids]) for u in out["UnprocessedIdentifiers"]))
        return out

    def batch_write_record(self, region: str, _name: str | None, req: dict) -> dict:
        entries = req.get("Entries")
        out = self.backend.batch_write_record(region, entries, req.get("TtlDuration"),
                                              self.unprocessed_write)
        left, errors = len(out["UnprocessedEntries"]), out["Errors"]
        self._count_batch("BatchWriteRecord", errors, entries=len(entries),
                          records=len(entries) - left - len(errors), unprocessed=left)
        return out

    def _count_batch(self, op: str, errors: list[dict], **counts: int) -> None:
        """A batch call's counters, then each entry error by its code."""
        for key, n in counts.items():
            self.stats.add(op, key, n)
        for e in errors:
            self.stats.add(op, "entry_errors")
            self.stats.error(op, e["ErrorCode"])


def _snake(op: str) -> str:
    """CreateFeatureGroup -> create_feature_group (the backend's method names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()
