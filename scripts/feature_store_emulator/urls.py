"""Which operation a request is (moto's ``urls.py``).

The control plane is JSON 1.1: ``POST /`` with ``X-Amz-Target: SageMaker.<Op>``. The runtime
is rest-json, one route per operation (botocore's sagemaker-featurestore-runtime model).
"""

from __future__ import annotations

from urllib.parse import unquote

CONTROL_OPS = ("CreateFeatureGroup", "DescribeFeatureGroup", "ListFeatureGroups",
               "UpdateFeatureGroup", "DeleteFeatureGroup")
_RECORD_OPS = {"PUT": "PutRecord", "GET": "GetRecord", "DELETE": "DeleteRecord"}
_BATCH_OPS = {"/BatchWriteRecord": "BatchWriteRecord", "/BatchGetRecord": "BatchGetRecord"}


def is_control(method: str, path: str) -> bool:
    return method == "POST" and path == "/"


def control_op(amz_target: str) -> str | None:
    prefix, _, op = amz_target.partition(".")
    return op if prefix == "SageMaker" and op in CONTROL_OPS else None


def runtime_route(method: str, path: str) -> tuple[str | None, str | None]:
    """(operation, feature group name from the path); (None, None) when nothing matches."""
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "FeatureGroup" and parts[2]:
        return _RECORD_OPS.get(method), unquote(parts[2])
    if len(parts) == 4 and parts[1] == "FeatureGroup" and parts[3] == "ListRecords":
        return ("ListRecords" if method == "POST" else None), unquote(parts[2])
    if method == "POST" and path in _BATCH_OPS:
        return _BATCH_OPS[path], None
    return None, None
