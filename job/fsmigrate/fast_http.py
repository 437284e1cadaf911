"""A lean BatchWriteRecord sender built from botocore's own parts.

boto3's generic machinery (parameter walk, event hooks, shape-driven serializer) costs more CPU
per record than everything else on the write path: the body of a BatchWriteRecord is a plain
JSON document, so it is written with :func:`json.dumps` and sent by botocore's pieces:

* credentials, region, endpoint and signing name from a regular boto3 client (so
  ``AWS_ENDPOINT_URL``, profiles, instance roles and refresh all behave as with boto3);
* :class:`botocore.auth.SigV4Auth` signs an :class:`botocore.awsrequest.AWSRequest`;
* :class:`botocore.httpsession.URLLib3Session` sends it over a pooled connection and maps
  connection errors to botocore's exceptions;
* the response goes through botocore's own rest-json parser, so ``Errors``,
  ``UnprocessedEntries`` and error codes (``x-amzn-ErrorType`` header, then the body's
  ``code``/``__type``) come out exactly as boto3 gives them, and a failed call raises
  :class:`botocore.exceptions.ClientError` like boto3 does.

Everything else (PutRecord, BatchGetRecord, ``meta``) is the wrapped boto3 client's.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import NoCredentialsError
from botocore.httpsession import URLLib3Session
from botocore.parsers import create_parser

OPERATION = "BatchWriteRecord"


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
        self._signing_name = model.signing_name
        self._region = meta.region_name
        self._credentials = credentials
        self._parser = create_parser("rest-json")
        self._http = URLLib3Session(max_pool_connections=max_pool, timeout=(timeout, timeout),
                                    verify=True)
        self._user_agent = f"fsmigrate-fast {meta.config.user_agent or ''}".strip()

    def __getattr__(self, name: str) -> Any:  # only called for names not found above
        return getattr(self._client, name)

    def batch_write_record(self, Entries: list) -> dict[str, Any]:  # noqa: N803
        """Entries as dicts (boto3's form) or each as JSON text (built by Spark, see
        :mod:`fsmigrate.encode`): those are joined as they are."""
        if Entries and isinstance(Entries[0], str):
            return self.send_body(('{"Entries":[' + ",".join(Entries) + "]}").encode())
        return self.send_body(json.dumps({"Entries": Entries}, separators=(",", ":")).encode())

    def send_body(self, body: bytes) -> dict[str, Any]:
        """POST a ready BatchWriteRecord body; the parsed response (raises ClientError)."""
        if self._credentials is None:
            raise NoCredentialsError()
        request = AWSRequest(method="POST", url=self._url, data=body, headers={
            "Content-Type": "application/json", "User-Agent": self._user_agent})
        # frozen: a refresh between reading the key and the token can't mix two credentials
        SigV4Auth(self._credentials.get_frozen_credentials(), self._signing_name,
                  self._region).add_auth(request)
        response = self._http.send(request.prepare())
        parsed = self._parser.parse({"status_code": response.status_code,
                                     "headers": response.headers, "body": response.content},
                                    self._output_shape)
        if response.status_code >= 300:
            # the modeled class boto3 raises (ValidationError ...), else ClientError
            raise self._client.exceptions.from_code(parsed["Error"]["Code"])(parsed, OPERATION)
        return parsed

    def close(self) -> None:
        self._http.close()
