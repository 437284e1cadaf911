#!/usr/bin/env python3
"""Local Amazon SageMaker Feature Store emulator.

Unmodified boto3 clients talk to it through ``endpoint_url``: both the ``sagemaker`` control
plane (JSON 1.1, ``X-Amz-Target: SageMaker.<Op>``) and ``sagemaker-featurestore-runtime``
(rest-json) point at the same URL. The offline store is written as Parquet under
``<data-dir>/<bucket>/<key>`` in the Glue layout the real service uses.

    python scripts/local_feature_store.py --port 0 --data-dir /tmp/fs

Admin endpoints (not AWS, no auth): ``POST /_emulator/flush``, ``GET /_emulator/stats``,
``GET|POST /_emulator/faults``, ``POST /_emulator/reset``, ``GET /_emulator/health``.

Stdlib + pyarrow only. Every response goes out in one ``send`` on a TCP_NODELAY socket.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import calendar
import json
import os
import random
import re
import signal
import socket
import socketserver
import string
import sys
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from urllib.parse import parse_qs, unquote

ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
RESERVED_FEATURES = frozenset({"is_deleted", "write_time", "api_invocation_time"})
NAME_RE = re.compile(r"[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}")
ARN_RE = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):([0-9]{12}):feature-group/(.+)")
S3_URI_RE = re.compile(r"s3://([^/]+)/?(.*)")
ISO_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
INT_RE = re.compile(r"[+-]?\d+")
FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
CREDENTIAL_RE = re.compile(r"Credential=[^/,]*/[^/,]*/([^/,]*)/")
FEATURE_TYPES = ("Integral", "Fractional", "String")
COLLECTION_TYPES = ("List", "Set", "Vector")
STORAGE_TYPES = ("Standard", "Standard_V2", "InMemory")
TTL_UNITS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
ONLINE, OFFLINE = "OnlineStore", "OfflineStore"
NS = 1_000_000_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MIN_EVENT_NS = -62135596800 * NS  # 0001-01-01T00:00:00Z
MAX_EVENT_NS = 253402300800 * NS  # 10000-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALNUM = string.ascii_letters + string.digits
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}
JSON11 = "application/x-amz-json-1.1"
RESTJSON = "application/json"


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def validation(message: str) -> ApiError:
    return ApiError("ValidationError", message, 400)


def cp_validation(message: str) -> ApiError:
    return ApiError("ValidationException", message, 400)


# ---- time helpers -------------------------------------------------------------------------

def parse_iso_ns(value: str) -> int | None:
    m = ISO_RE.fullmatch(value)
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError:
        return None
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    return secs * NS + (int(frac.ljust(9, "0")) if frac else 0)


def parse_fractional_ns(value: str) -> int | None:
    if not FLOAT_RE.fullmatch(value):
        return None
    try:
        dec = Decimal(value)
        if not dec.is_finite() or abs(dec) > Decimal(10) ** 12:
            return None
        return int((dec * NS).to_integral_value(rounding=ROUND_FLOOR))
    except (InvalidOperation, ValueError):
        return None


def iso_from_ns(ns: int) -> str:
    secs, rem = divmod(ns, NS)
    text = (EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if rem:
        text += "." + f"{rem:09d}".rstrip("0")
    return text + "Z"


def ttl_seconds(ttl, error=validation) -> int | None:
    """Validate a TtlDuration structure; None when absent."""
    if ttl is None:
        return None
    if not isinstance(ttl, dict):
        raise error("TtlDuration must be a structure with Unit and Value")
    unit, value = ttl.get("Unit"), ttl.get("Value")
    if unit not in TTL_UNITS:
        raise error(f"TtlDuration.Unit must be one of {', '.join(TTL_UNITS)}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise error("TtlDuration.Value must be an integer >= 1")
    return value * TTL_UNITS[unit]


def _b64(obj) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(token: str):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return json.loads(raw)
    except (ValueError, TypeError):
        return None


# ---- data model ---------------------------------------------------------------------------

class Feature:
    __slots__ = ("name", "type", "collection", "dimension")

    def __init__(self, name, ftype, collection=None, dimension=None):
        self.name, self.type, self.collection, self.dimension = name, ftype, collection, dimension

    def describe(self) -> dict:
        out = {"FeatureName": self.name, "FeatureType": self.type}
        if self.collection:
            out["CollectionType"] = self.collection
            if self.collection == "Vector":
                out["CollectionConfig"] = {"VectorConfig": {"Dimension": self.dimension}}
        return out


class OnlineRecord:
    __slots__ = ("record", "event_ns", "expires_ns", "deleted")

    def __init__(self, record, event_ns, expires_ns, deleted=False):
        self.record, self.event_ns = record, event_ns
        self.expires_ns, self.deleted = expires_ns, deleted


class Group:
    def __init__(self, region: str, name: str):
        self.region, self.name = region, name
        self.arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:feature-group/{name.lower()}"
        self.features: list[Feature] = []
        self.by_name: dict[str, Feature] = {}
        self.kinds: dict[str, str] = {}
        self.record_id = ""
        self.event_time = ""
        self.online = False
        self.offline = False
        self.online_config: dict = {}
        self.offline_config: dict = {}
        self.throughput: dict = {"ThroughputMode": "OnDemand"}
        self.ttl_seconds: int | None = None
        self.creation = time.time()
        self.last_modified: float | None = None
        self.role_arn = None
        self.description = None
        self.tags = []
        self.local_dir = ""
        self.records: dict[str, OnlineRecord] = {}
        self.sorted_ids: list[str] | None = None

    def add_feature(self, feat: Feature) -> None:
        self.features.append(feat)
        self.by_name[feat.name] = feat
        self.kinds[feat.name] = "C" if feat.collection else feat.type[0]  # C, I, F or S

    @property
    def stores(self) -> tuple[str, ...]:
        return self._stores[(self.online, self.offline)]

    _stores = {(True, True): (ONLINE, OFFLINE), (True, False): (ONLINE,),
               (False, True): (OFFLINE,), (False, False): ()}

    def describe(self, start: int, page: int) -> dict:
        defs = [f.describe() for f in self.features[start:start + page]]
        out = {
            "FeatureGroupArn": self.arn,
            "FeatureGroupName": self.name,
            "RecordIdentifierFeatureName": self.record_id,
            "EventTimeFeatureName": self.event_time,
            "FeatureDefinitions": defs,
            "CreationTime": self.creation,
            "FeatureGroupStatus": "Created",
            "ThroughputConfig": dict(self.throughput),
            "NextToken": "",
        }
        if start + page < len(self.features):
            out["NextToken"] = _b64({"g": self.arn, "o": start + page})
        if self.online_config:
            out["OnlineStoreConfig"] = json.loads(json.dumps(self.online_config))
        if self.offline_config:
            out["OfflineStoreConfig"] = json.loads(json.dumps(self.offline_config))
            out["OfflineStoreStatus"] = {"Status": "Active"}
        if self.last_modified is not None:
            out["LastModifiedTime"] = self.last_modified
            out["LastUpdateStatus"] = {"Status": "Successful"}
        if self.role_arn:
            out["RoleArn"] = self.role_arn
        if self.description is not None:
            out["Description"] = self.description
        return out

    def summary(self) -> dict:
        out = {"FeatureGroupName": self.name, "FeatureGroupArn": self.arn,
               "CreationTime": self.creation, "FeatureGroupStatus": "Created"}
        if self.offline:
            out["OfflineStoreStatus"] = {"Status": "Active"}
        return out


class Row:
    __slots__ = ("values", "event_ns", "api_us", "deleted")

    def __init__(self, values, event_ns, api_us, deleted):
        self.values, self.event_ns, self.api_us, self.deleted = values, event_ns, api_us, deleted


# ---- faults and stats ---------------------------------------------------------------------

class Faults:
    KEYS = ("throttle_tps", "error_rate", "latency_ms", "outage_seconds", "unprocessed_rate",
            "unprocessed_get_rate", "seed")

    def __init__(self):
        self.lock = threading.Lock()
        self.configure({})

    def configure(self, cfg: dict) -> dict:
        unknown = set(cfg) - set(self.KEYS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")

        def num(key, lo=0.0, hi=None):
            val = cfg.get(key)
            if val is None:
                return 0.0
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < lo or (
                    hi is not None and val > hi):
                raise ValueError(f"{key} must be a number in [{lo}, {hi if hi else 'inf'}]")
            return float(val)

        settings = {
            "throttle_tps": num("throttle_tps"),
            "error_rate": num("error_rate", 0.0, 1.0),
            "latency_ms": num("latency_ms"),
            "outage_seconds": num("outage_seconds"),
            "unprocessed_rate": num("unprocessed_rate", 0.0, 1.0),
            "unprocessed_get_rate": num("unprocessed_get_rate", 0.0, 1.0),
        }
        with self.lock:
            self.settings = settings
            self.seed = cfg.get("seed")
            self.rng = random.Random(self.seed)
            self.outage_until = time.monotonic() + settings["outage_seconds"]
            self.tokens = max(settings["throttle_tps"], 1.0)
            self.refilled = time.monotonic()
        return self.describe()

    def describe(self) -> dict:
        with self.lock:
            out = {k: v for k, v in self.settings.items() if v}
            if self.seed is not None:
                out["seed"] = self.seed
            left = self.outage_until - time.monotonic()
            if self.settings["outage_seconds"]:
                out["outage_remaining_seconds"] = round(max(left, 0.0), 3)
            return out

    def latency(self) -> float:
        return self.settings["latency_ms"] / 1000.0

    def check(self) -> ApiError | None:
        """The injected failure for one runtime request, if any."""
        s = self.settings
        with self.lock:
            now = time.monotonic()
            if s["outage_seconds"] and now < self.outage_until:
                return ApiError("ServiceUnavailable", "Service unavailable (injected outage)", 503)
            tps = s["throttle_tps"]
            if tps:
                cap = max(tps, 1.0)
                self.tokens = min(cap, self.tokens + (now - self.refilled) * tps)
                self.refilled = now
                if self.tokens < 1.0:
                    return ApiError("ThrottlingException", "Rate exceeded", 400)
                self.tokens -= 1.0
            rate = s["error_rate"]
            if rate and self.rng.random() < rate:
                if self.rng.random() < 0.5:
                    return ApiError("InternalFailure", "Internal failure (injected)", 500)
                return ApiError("ServiceUnavailable", "Service unavailable (injected)", 503)
        return None

    def draw(self, rate_key: str) -> bool:
        rate = self.settings[rate_key]
        if not rate:
            return False
        with self.lock:
            return self.rng.random() < rate


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        with self.lock:
            self.ops: dict[str, dict] = {}
            self.throttled = 0
            self.started = time.time()

    def _op(self, op):
        entry = self.ops.get(op)
        if entry is None:
            entry = self.ops[op] = {"requests": 0, "records": 0, "errors": {}}
        return entry

    def request(self, op):
        with self.lock:
            self._op(op)["requests"] += 1

    def add(self, op, key, n=1):
        if n:
            with self.lock:
                entry = self._op(op)
                entry[key] = entry.get(key, 0) + n

    def error(self, op, code, n=1):
        with self.lock:
            errors = self._op(op)["errors"]
            errors[code] = errors.get(code, 0) + n
            if code == "ThrottlingException":
                self.throttled += n

    def snapshot(self) -> dict:
        with self.lock:
            return {"operations": json.loads(json.dumps(self.ops)), "throttled": self.throttled,
                    "uptime_seconds": round(time.time() - self.started, 3)}


# ---- the store ----------------------------------------------------------------------------

class FeatureStore:
    def __init__(self, data_dir: str, describe_page_size: int = 100, log=None):
        self.data_dir = os.path.abspath(data_dir)
        self.describe_page_size = describe_page_size
        self.lock = threading.RLock()
        self.flush_lock = threading.Lock()
        self.groups: dict[tuple[str, str], Group] = {}
        self.by_arn: dict[str, Group] = {}
        self.buffer: dict[Group, list[Row]] = {}
        self.buffered = 0
        self.files_written: list[str] = []
        self.rows_written = 0
        self.last_api_us = 0
        self.name_rng = random.Random()
        self.log = log or (lambda msg: None)

    # -- helpers --
    def api_time_us(self) -> int:
        """Strictly increasing microseconds, so api_invocation_time breaks ties in order."""
        now = time.time_ns() // 1000
        with self.lock:
            if now <= self.last_api_us:
                now = self.last_api_us + 1
            self.last_api_us = now
        return now

    def find(self, region: str, name_or_arn, status: int) -> Group:
        """The group for a name or ARN; ResourceNotFound with the protocol's status."""
        if not isinstance(name_or_arn, str) or not name_or_arn:
            raise validation("FeatureGroupName is required")
        if name_or_arn.startswith("arn:"):
            group = self.by_arn.get(name_or_arn.lower())
        else:
            group = self.groups.get((region, name_or_arn))
        if group is None:
            raise ApiError("ResourceNotFound", f"Resource Not Found: FeatureGroup {name_or_arn} "
                           "not found.", status)
        return group

    def find_runtime(self, region, name) -> Group:
        return self.find(region, name, 404)

    def find_control(self, region, name) -> Group:
        return self.find(region, name, 400)

    # -- control plane --
    def _parse_feature(self, fd, allow_collections: bool, seen: set[str]) -> Feature:
        if not isinstance(fd, dict):
            raise cp_validation("FeatureDefinition must be a structure")
        name, ftype = fd.get("FeatureName"), fd.get("FeatureType")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise cp_validation(f"Invalid FeatureName '{name}': must match "
                                f"{NAME_RE.pattern}")
        if name.lower() in RESERVED_FEATURES:
            raise cp_validation(f"FeatureName '{name}' is reserved (is_deleted, write_time, "
                                f"api_invocation_time)")
        if name.lower() in seen:
            raise cp_validation(f"Duplicate FeatureName '{name}' in FeatureDefinitions")
        seen.add(name.lower())
        if ftype not in FEATURE_TYPES:
            raise cp_validation(f"FeatureType of '{name}' must be one of "
                                f"{', '.join(FEATURE_TYPES)}")
        coll = fd.get("CollectionType")
        dim = None
        if coll is not None:
            if coll not in COLLECTION_TYPES:
                raise cp_validation(f"CollectionType of '{name}' must be one of "
                                    f"{', '.join(COLLECTION_TYPES)}")
            if not allow_collections:
                raise cp_validation(f"Feature '{name}' has CollectionType {coll}: collection "
                                    "types are only supported with OnlineStoreConfig "
                                    "StorageType InMemory")
            if coll == "Vector":
                if ftype != "Fractional":
                    raise cp_validation(f"Vector feature '{name}' must be Fractional")
                dim = ((fd.get("CollectionConfig") or {}).get("VectorConfig") or {}).get(
                    "Dimension")
                if not isinstance(dim, int) or not 1 <= dim <= 8192:
                    raise cp_validation(f"Vector feature '{name}' needs CollectionConfig."
                                        "VectorConfig.Dimension in 1..8192")
        return Feature(name, ftype, coll, dim)

    def create_feature_group(self, region: str, req: dict) -> dict:
        name = req.get("FeatureGroupName")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise cp_validation(f"Invalid FeatureGroupName '{name}': must match "
                                f"{NAME_RE.pattern}")
        defs = req.get("FeatureDefinitions")
        if not isinstance(defs, list) or not defs:
            raise cp_validation("FeatureDefinitions must contain at least 1 feature")
        if len(defs) > 2500:
            raise cp_validation("FeatureDefinitions must contain at most 2500 features")
        online_cfg = req.get("OnlineStoreConfig") or {}
        offline_cfg = req.get("OfflineStoreConfig")
        online = bool(online_cfg.get("EnableOnlineStore"))
        storage = online_cfg.get("StorageType")
        if storage is not None and storage not in STORAGE_TYPES:
            raise cp_validation(f"StorageType must be one of {', '.join(STORAGE_TYPES)}")
        in_memory = online and storage == "InMemory"
        if not online and not offline_cfg:
            raise cp_validation("At least one of OnlineStoreConfig (EnableOnlineStore) and "
                                "OfflineStoreConfig must be specified")
        if in_memory and offline_cfg:
            raise cp_validation("OfflineStoreConfig is not supported with OnlineStoreConfig "
                                "StorageType InMemory")
        group = Group(region, name)
        seen: set[str] = set()
        for fd in defs:
            group.add_feature(self._parse_feature(fd, in_memory, seen))
        rid, evt = req.get("RecordIdentifierFeatureName"), req.get("EventTimeFeatureName")
        if rid not in group.by_name:
            raise cp_validation(f"RecordIdentifierFeatureName '{rid}' is not a defined feature")
        if evt not in group.by_name:
            raise cp_validation(f"EventTimeFeatureName '{evt}' is not a defined feature")
        if group.by_name[rid].type not in ("Integral", "String") or group.by_name[rid].collection:
            raise cp_validation("The record identifier feature must be Integral or String")
        if group.by_name[evt].type not in ("Fractional", "String") or group.by_name[evt].collection:
            raise cp_validation("The event time feature must be Fractional or String")
        if rid == evt:
            raise cp_validation("RecordIdentifierFeatureName and EventTimeFeatureName must "
                                "differ")
        group.record_id, group.event_time = rid, evt
        if online:
            group.online = True
            cfg = {"EnableOnlineStore": True, "StorageType": storage or "Standard"}
            if online_cfg.get("SecurityConfig"):
                cfg["SecurityConfig"] = online_cfg["SecurityConfig"]
            ttl = online_cfg.get("TtlDuration")
            if ttl is not None:
                group.ttl_seconds = ttl_seconds(ttl, cp_validation)
                cfg["TtlDuration"] = {"Unit": ttl["Unit"], "Value": ttl["Value"]}
            group.online_config = cfg
        if offline_cfg:
            s3 = (offline_cfg.get("S3StorageConfig") or {}) if isinstance(offline_cfg,
                                                                           dict) else {}
            uri = s3.get("S3Uri")
            m = S3_URI_RE.fullmatch(uri) if isinstance(uri, str) else None
            if not m:
                raise cp_validation("OfflineStoreConfig.S3StorageConfig.S3Uri must be an "
                                    "s3://bucket[/prefix] URI")
            table_format = offline_cfg.get("TableFormat") or "Glue"
            if table_format not in ("Default", "Glue", "Iceberg"):
                raise cp_validation("TableFormat must be one of Default, Glue, Iceberg")
            group.offline = True
            created = int(group.creation)
            resolved = (f"{uri.rstrip('/')}/{ACCOUNT}/sagemaker/{region}/offline-store/"
                        f"{name}-{created}/data")
            s3_out = {"S3Uri": uri, "ResolvedOutputS3Uri": resolved}
            if s3.get("KmsKeyId"):
                s3_out["KmsKeyId"] = s3["KmsKeyId"]
            cfg = {"S3StorageConfig": s3_out,
                   "DisableGlueTableCreation": bool(offline_cfg.get("DisableGlueTableCreation")),
                   "TableFormat": table_format}
            catalog = offline_cfg.get("DataCatalogConfig")
            if catalog:
                cfg["DataCatalogConfig"] = dict(catalog)
            elif not offline_cfg.get("DisableGlueTableCreation"):
                cfg["DataCatalogConfig"] = {
                    "TableName": f"{name}-{created}".lower().replace("-", "_"),
                    "Catalog": "AwsDataCatalog", "Database": "sagemaker_featurestore"}
            group.offline_config = cfg
            bucket, key = S3_URI_RE.fullmatch(resolved).groups()
            group.local_dir = os.path.join(self.data_dir, bucket, *key.split("/"))
        tp = req.get("ThroughputConfig")
        if tp:
            if tp.get("ThroughputMode") not in ("OnDemand", "Provisioned"):
                raise cp_validation("ThroughputMode must be OnDemand or Provisioned")
            group.throughput = dict(tp)
        group.role_arn = req.get("RoleArn")
        group.description = req.get("Description")
        group.tags = req.get("Tags") or []
        with self.lock:
            if (region, name) in self.groups:
                raise ApiError("ResourceInUse", f"Resource Already Exists: FeatureGroup with "
                               f"name {name} already exists. Choose a different name.", 400)
            self.groups[(region, name)] = group
            self.by_arn[group.arn] = group
        return {"FeatureGroupArn": group.arn}

    def describe_feature_group(self, region: str, req: dict) -> dict:
        with self.lock:
            group = self.find_control(region, req.get("FeatureGroupName"))
            start = 0
            token = req.get("NextToken")
            if token:
                data = _unb64(token)
                if (not isinstance(data, dict) or data.get("g") != group.arn
                        or not isinstance(data.get("o"), int)
                        or not 0 <= data["o"] <= len(group.features)):
                    raise cp_validation("Invalid NextToken")
                start = data["o"]
            return group.describe(start, self.describe_page_size)

    def list_feature_groups(self, region: str, req: dict) -> dict:
        with self.lock:
            groups = [g for (r, _), g in self.groups.items() if r == region]
        contains = req.get("NameContains")
        if contains:
            groups = [g for g in groups if contains.lower() in g.name.lower()]
        status = req.get("FeatureGroupStatusEquals")
        if status and status != "Created":
            groups = []
        off_status = req.get("OfflineStoreStatusEquals")
        if off_status:
            groups = [g for g in groups if g.offline and off_status == "Active"]
        after, before = req.get("CreationTimeAfter"), req.get("CreationTimeBefore")
        if after is not None:
            groups = [g for g in groups if g.creation > float(after)]
        if before is not None:
            groups = [g for g in groups if g.creation < float(before)]
        sort_by = req.get("SortBy") or "CreationTime"
        keys = {"Name": lambda g: g.name, "CreationTime": lambda g: (g.creation, g.name),
                "FeatureGroupStatus": lambda g: g.name,
                "OfflineStoreStatus": lambda g: (not g.offline, g.name)}
        if sort_by not in keys:
            raise cp_validation("Invalid SortBy")
        groups.sort(key=keys[sort_by], reverse=(req.get("SortOrder") or "Descending")
                    == "Descending")
        max_results = req.get("MaxResults") or 10
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise cp_validation("MaxResults must be between 1 and 100")
        start = 0
        if req.get("NextToken"):
            data = _unb64(req["NextToken"])
            if not isinstance(data, dict) or not isinstance(data.get("o"), int):
                raise cp_validation("Invalid NextToken")
            start = data["o"]
        page = groups[start:start + max_results]
        out = {"FeatureGroupSummaries": [g.summary() for g in page]}
        if start + max_results < len(groups):
            out["NextToken"] = _b64({"o": start + max_results})
        return out

    def update_feature_group(self, region: str, req: dict) -> dict:
        with self.lock:
            group = self.find_control(region, req.get("FeatureGroupName"))
            additions = req.get("FeatureAdditions")
            online_update = req.get("OnlineStoreConfig")
            throughput = req.get("ThroughputConfig")
            if additions is not None and online_update is not None:
                raise cp_validation("Use only one of FeatureAdditions and OnlineStoreConfig "
                                    "per UpdateFeatureGroup call")
            new_features = []
            if additions is not None:
                if not isinstance(additions, list) or not 1 <= len(additions) <= 100:
                    raise cp_validation("FeatureAdditions must contain 1..100 features")
                if len(group.features) + len(additions) > 2500:
                    raise ApiError("ResourceLimitExceeded", "A feature group can have at most "
                                   "2500 features", 400)
                seen = {f.name.lower() for f in group.features}
                in_memory = group.online_config.get("StorageType") == "InMemory"
                new_features = [self._parse_feature(fd, in_memory, seen) for fd in additions]
            ttl_change = None
            if online_update is not None:
                if not group.online:
                    raise cp_validation("The feature group has no online store")
                storage = online_update.get("StorageType")
                if storage is not None and storage != group.online_config.get("StorageType"):
                    raise cp_validation("StorageType cannot be changed")
                if "TtlDuration" in online_update:
                    ttl = online_update["TtlDuration"]
                    if not ttl or (ttl.get("Unit") is None and ttl.get("Value") is None):
                        ttl_change = (None, None)
                    else:
                        ttl_change = (ttl_seconds(ttl, cp_validation),
                                      {"Unit": ttl["Unit"], "Value": ttl["Value"]})
            if throughput is not None:
                mode = throughput.get("ThroughputMode")
                if mode is not None and mode not in ("OnDemand", "Provisioned"):
                    raise cp_validation("ThroughputMode must be OnDemand or Provisioned")
            for feat in new_features:
                group.add_feature(feat)
            if ttl_change is not None:
                group.ttl_seconds = ttl_change[0]
                if ttl_change[1] is None:
                    group.online_config.pop("TtlDuration", None)
                else:
                    group.online_config["TtlDuration"] = ttl_change[1]
            if throughput:
                group.throughput.update({k: v for k, v in throughput.items() if v is not None})
            group.last_modified = time.time()
            return {"FeatureGroupArn": group.arn}

    def delete_feature_group(self, region: str, req: dict) -> dict:
        with self.lock:
            group = self.find_control(region, req.get("FeatureGroupName"))
            del self.groups[(group.region, group.name)]
            self.by_arn.pop(group.arn, None)
            group.records = {}
            group.sorted_ids = None
        return {}

    # -- runtime: validation --
    def _target_stores(self, group: Group, stores) -> tuple[str, ...]:
        if stores is None or stores == []:
            return group.stores
        if not isinstance(stores, list) or len(stores) > 2:
            raise validation("TargetStores must be a list of 1..2 stores")
        for s in stores:
            if s not in (ONLINE, OFFLINE):
                raise validation(f"Invalid TargetStore '{s}': must be OnlineStore or "
                                 "OfflineStore")
            if s not in group.stores:
                raise validation(f"TargetStores contains {s} but the feature group "
                                 f"{group.name} has no {s}")
        return tuple(dict.fromkeys(stores))

    def _event_ns(self, group: Group, value, what="EventTime") -> int:
        ftype = group.by_name[group.event_time].type
        ns = None
        if isinstance(value, str):
            ns = parse_fractional_ns(value) if ftype == "Fractional" else parse_iso_ns(value)
        if ns is None:
            fmt = ("a unix timestamp in seconds" if ftype == "Fractional"
                   else "an ISO-8601 string yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z")
            raise validation(f"Invalid {what} value '{value}': must be {fmt}")
        if not MIN_EVENT_NS <= ns < MAX_EVENT_NS:
            raise validation(f"{what} value '{value}' is out of range")
        return ns

    @staticmethod
    def _check_scalar(feat: Feature, value) -> None:
        if not isinstance(value, str):
            raise validation(f"Value for feature '{feat.name}' must be a string")
        if feat.type == "Integral":
            if not INT_RE.fullmatch(value) or not INT64_MIN <= int(value) <= INT64_MAX:
                raise validation(f"Value '{value}' for feature '{feat.name}' is not a valid "
                                 "Integral (64-bit integer)")
        elif feat.type == "Fractional":
            if not FLOAT_RE.fullmatch(value) or float(value) in (float("inf"), float("-inf")):
                raise validation(f"Value '{value}' for feature '{feat.name}' is not a valid "
                                 "Fractional")

    def _check_value(self, group: Group, feat: Feature, fv: dict):
        """The value of one FeatureValue (the careful path, with precise messages)."""
        name = feat.name
        has_scalar, has_list = "ValueAsString" in fv, "ValueAsStringList" in fv
        if has_scalar == has_list:
            raise validation(f"Feature '{name}' needs exactly one of ValueAsString and "
                             "ValueAsStringList")
        if not feat.collection:
            if has_list:
                raise validation(f"Feature '{name}' is a scalar feature: use ValueAsString")
            value = fv["ValueAsString"]
            self._check_scalar(feat, value)
            return value
        if not has_list:
            raise validation(f"Feature '{name}' is a {feat.collection} feature: use "
                             "ValueAsStringList")
        items = fv["ValueAsStringList"]
        if not isinstance(items, list):
            raise validation(f"ValueAsStringList of '{name}' must be a list")
        for item in items:
            self._check_scalar(feat, item)
        if feat.collection == "Vector" and len(items) != feat.dimension:
            raise validation(f"Vector feature '{name}' needs {feat.dimension} values, "
                             f"got {len(items)}")
        if feat.collection == "Set" and len(set(items)) != len(items):
            raise validation(f"Set feature '{name}' has duplicate values")
        return items

    def _validate_record(self, group: Group, record) -> tuple[str, int, dict]:
        """(record id, event ns, {feature: value}) or ValidationError."""
        if type(record) is not list or not record:
            raise validation("Record must contain at least one feature value")
        values: dict = {}
        kinds = group.kinds
        int_match, float_match = INT_RE.fullmatch, FLOAT_RE.fullmatch
        for fv in record:
            if type(fv) is not dict:
                raise validation("Each feature value must be a structure")
            name = fv.get("FeatureName")
            kind = kinds.get(name)
            if kind is None:
                raise validation(f"Feature '{name}' is not defined in feature group "
                                 f"{group.name}")
            if name in values:
                raise validation(f"Feature '{name}' appears more than once in the record")
            value = fv.get("ValueAsString")
            # fast path: a scalar feature with exactly FeatureName + ValueAsString
            if kind != "C" and type(value) is str and len(fv) == 2:
                if kind == "S":
                    values[name] = value
                    continue
                if kind == "I":
                    if int_match(value) and (len(value) < 18
                                             or INT64_MIN <= int(value) <= INT64_MAX):
                        values[name] = value
                        continue
                elif float_match(value) and not ("e" in value or "E" in value
                                                 or len(value) > 300):
                    values[name] = value
                    continue
            values[name] = self._check_value(group, group.by_name[name], fv)
        rid = values.get(group.record_id)
        if rid is None or rid == "":
            raise validation(f"Record identifier feature '{group.record_id}' is missing")
        evt = values.get(group.event_time)
        if evt is None:
            raise validation(f"Event time feature '{group.event_time}' is missing")
        return rid, self._event_ns(group, evt), values

    def _effective_ttl(self, group: Group, ttl) -> int | None:
        secs = ttl_seconds(ttl)
        return secs if secs is not None else group.ttl_seconds

    # -- runtime: state changes (caller holds self.lock) --
    def _live(self, group: Group, rid: str, now_ns: int) -> OnlineRecord | None:
        cur = group.records.get(rid)
        if cur is not None and cur.expires_ns is not None and now_ns >= cur.expires_ns:
            del group.records[rid]
            group.sorted_ids = None
            return None
        return cur

    def _buffer(self, group: Group, row: Row) -> None:
        rows = self.buffer.get(group)
        if rows is None:
            rows = self.buffer[group] = []
        rows.append(row)
        self.buffered += 1

    def _apply_put(self, group, rid, event_ns, values, record, targets, ttl_secs, api_us,
                   now_ns) -> None:
        if ONLINE in targets:
            cur = self._live(group, rid, now_ns)
            if cur is None or event_ns >= cur.event_ns:
                expires = event_ns + ttl_secs * NS if ttl_secs is not None else None
                if cur is None:
                    group.sorted_ids = None
                group.records[rid] = OnlineRecord(record, event_ns, expires)
        if OFFLINE in targets:
            self._buffer(group, Row(values, event_ns, api_us, False))

    def put(self, group: Group, record, targets, ttl) -> None:
        targets = self._target_stores(group, targets)
        rid, event_ns, values = self._validate_record(group, record)
        ttl_secs = self._effective_ttl(group, ttl)
        api_us = self.api_time_us()
        with self.lock:
            self._apply_put(group, rid, event_ns, values, record, targets, ttl_secs, api_us,
                            time.time_ns())

    def delete(self, group: Group, rid, event_time, targets, mode) -> bool:
        """Returns True when the online record was changed."""
        if not rid:
            raise validation("RecordIdentifierValueAsString is required")
        if mode not in (None, "SoftDelete", "HardDelete"):
            raise validation("DeletionMode must be SoftDelete or HardDelete")
        mode = mode or "SoftDelete"
        targets = self._target_stores(group, targets)
        rid_feat = group.by_name[group.record_id]
        if rid_feat.type == "Integral":
            self._check_scalar(rid_feat, rid)
        if event_time is None:
            raise validation("EventTime is required")
        event_ns = self._event_ns(group, event_time)
        api_us = self.api_time_us()
        changed = False
        with self.lock:
            now_ns = time.time_ns()
            if ONLINE in targets:
                cur = self._live(group, rid, now_ns)
                if cur is not None and event_ns <= cur.event_ns:
                    if mode == "HardDelete":
                        raise validation(
                            f"EventTime {event_time} of the HardDelete must be later than the "
                            f"EventTime {iso_from_ns(cur.event_ns)} of the existing record")
                    # SoftDelete not newer: the online record stays, the marker still goes
                    # to the offline store (documented AWS behaviour).
                elif cur is not None:
                    changed = True
                    if mode == "HardDelete":
                        del group.records[rid]
                        group.sorted_ids = None
                    else:
                        cur.record, cur.event_ns, cur.deleted = None, event_ns, True
            if OFFLINE in targets:
                values = {group.record_id: rid, group.event_time: event_time}
                self._buffer(group, Row(values, event_ns, api_us, True))
        return changed

    def get(self, group: Group, rid, feature_names, with_expiry) -> dict:
        if not group.online:
            raise validation(f"Feature group {group.name} has no online store")
        wanted = self._feature_filter(group, feature_names)
        with self.lock:
            cur = self._live(group, rid, time.time_ns())
            if cur is None or cur.deleted:
                return {}
            record, expires = cur.record, cur.expires_ns
        return self._render(record, expires, wanted, with_expiry)

    @staticmethod
    def _render(record, expires, wanted, with_expiry) -> dict:
        if wanted is not None:
            record = [fv for fv in record if fv.get("FeatureName") in wanted]
        out = {}
        if record:
            out["Record"] = record
        if with_expiry and expires is not None:
            out["ExpiresAt"] = iso_from_ns(expires)
        return out

    @staticmethod
    def _feature_filter(group: Group, names):
        if names is None or names == []:
            return None
        if not isinstance(names, list):
            raise validation("FeatureNames must be a list")
        for n in names:
            if n not in group.by_name:
                raise validation(f"Feature '{n}' is not defined in feature group {group.name}")
        return set(names)

    def list_ids(self, group: Group, max_results, token, include_deleted) -> dict:
        if not group.online:
            raise validation(f"Feature group {group.name} has no online store")
        if max_results is None:
            max_results = 100
        if (not isinstance(max_results, int) or isinstance(max_results, bool)
                or not 1 <= max_results <= 100):
            raise validation("MaxResults must be between 1 and 100")
        after = None
        if token:
            data = _unb64(token) if isinstance(token, str) else None
            if (not isinstance(data, dict) or data.get("g") != group.arn
                    or not isinstance(data.get("k"), str)):
                raise validation("Invalid NextToken")
            after = data["k"]
        out: list[str] = []
        with self.lock:
            now_ns = time.time_ns()
            if group.sorted_ids is None:
                group.sorted_ids = sorted(group.records)
            ids = group.sorted_ids
            pos = bisect.bisect_right(ids, after) if after is not None else 0
            last = None
            while pos < len(ids) and len(out) < max_results:
                rid = ids[pos]
                pos += 1
                last = rid
                cur = group.records.get(rid)
                if cur is None or (cur.expires_ns is not None and now_ns >= cur.expires_ns):
                    continue
                if cur.deleted and not include_deleted:
                    continue
                out.append(rid)
            more = pos < len(ids)
        resp = {"RecordIdentifiers": out}
        if more and last is not None:
            resp["NextToken"] = _b64({"g": group.arn, "k": last})
        return resp

    # -- offline store --
    def flush(self) -> dict:
        with self.flush_lock:
            with self.lock:
                buffer, self.buffer, self.buffered = self.buffer, {}, 0
            files = rows = 0
            for group, group_rows in buffer.items():
                try:
                    files += self._write_group(group, group_rows)
                    rows += len(group_rows)
                except Exception:  # noqa: BLE001 - keep serving; report on stderr
                    self.log(f"offline flush failed for {group.name}:\n"
                             f"{traceback.format_exc()}")
            with self.lock:
                self.rows_written += rows
            return {"files": files, "rows": rows}

    def _write_group(self, group: Group, rows: list[Row]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        partitions: dict[tuple, list[Row]] = {}
        for row in rows:
            secs = row.event_ns // NS
            dt = EPOCH + timedelta(seconds=secs)
            partitions.setdefault((dt.year, dt.month, dt.day, dt.hour), []).append(row)
        write_us = time.time_ns() // 1000
        written = 0
        ts_type = pa.timestamp("us", tz="UTC")
        for (y, mo, d, h), part in partitions.items():
            columns, fields = [], []
            for feat in group.features:
                raw = [r.values.get(feat.name) for r in part]
                if feat.type == "Integral":
                    arr = pa.array([None if v is None else int(v) for v in raw], pa.int64())
                elif feat.type == "Fractional":
                    arr = pa.array([None if v is None else float(v) for v in raw], pa.float64())
                else:
                    arr = pa.array(raw, pa.string())
                columns.append(arr)
                fields.append(pa.field(feat.name, arr.type))
            columns += [pa.array([write_us] * len(part), ts_type),
                        pa.array([r.api_us for r in part], ts_type),
                        pa.array([r.deleted for r in part], pa.bool_())]
            fields += [pa.field("write_time", ts_type), pa.field("api_invocation_time", ts_type),
                       pa.field("is_deleted", pa.bool_())]
            table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
            latest = max(r.event_ns for r in part) // NS
            stamp = (EPOCH + timedelta(seconds=latest)).strftime("%Y%m%dT%H%M%SZ")
            directory = os.path.join(group.local_dir, f"year={y:04d}", f"month={mo:02d}",
                                     f"day={d:02d}", f"hour={h:02d}")
            os.makedirs(directory, exist_ok=True)
            suffix = "".join(self.name_rng.choices(ALNUM, k=16))
            final = os.path.join(directory, f"{stamp}_{suffix}.parquet")
            tmp = os.path.join(directory, f".{stamp}_{suffix}.parquet.tmp")
            pq.write_table(table, tmp, compression="snappy")
            os.replace(tmp, final)
            with self.lock:
                self.files_written.append(final)
            written += 1
        return written

    def reset(self) -> dict:
        with self.flush_lock:
            with self.lock:
                files, self.files_written = self.files_written, []
                self.groups.clear()
                self.by_arn.clear()
                self.buffer, self.buffered = {}, 0
                self.rows_written = 0
            removed = 0
            dirs = set()
            for path in files:
                try:
                    os.remove(path)
                    removed += 1
                except FileNotFoundError:
                    pass
                dirs.add(os.path.dirname(path))
            # prune now-empty directories up to the data dir
            for directory in sorted(dirs, key=len, reverse=True):
                while directory.startswith(self.data_dir + os.sep):
                    try:
                        os.rmdir(directory)
                    except OSError:
                        break
                    directory = os.path.dirname(directory)
        return {"files_removed": removed}

    def offline_stats(self) -> dict:
        with self.lock:
            return {"buffered_rows": self.buffered, "files_written": len(self.files_written),
                    "rows_written": self.rows_written, "groups": len(self.groups),
                    "online_records": sum(len(g.records) for g in self.groups.values())}


# ---- HTTP application ---------------------------------------------------------------------

CONTROL_OPS = ("CreateFeatureGroup", "DescribeFeatureGroup", "ListFeatureGroups",
               "UpdateFeatureGroup", "DeleteFeatureGroup")


class App:
    def __init__(self, store: FeatureStore, log_requests=False, log=None):
        self.store = store
        self.faults = Faults()
        self.stats = Stats()
        self.log_requests = log_requests
        self.log = log or (lambda msg: None)
        self.closing = False

    # responses: (status, content_type, body bytes, extra header lines)
    @staticmethod
    def _json(status, obj, ctype=RESTJSON, extra=""):
        body = b"" if obj is None else json.dumps(obj, separators=(",", ":")).encode()
        return status, ctype, body, extra

    def _rest_error(self, err: ApiError):
        return self._json(err.status, {"__type": err.code, "message": err.message}, RESTJSON,
                          f"x-amzn-ErrorType: {err.code}\r\n")

    def _json11_error(self, err: ApiError):
        return self._json(err.status, {"__type": err.code, "message": err.message}, JSON11)

    def handle(self, method: str, target: str, headers: dict, body: bytes):
        path, _, query = target.partition("?")
        if path.startswith("/_emulator/"):
            return self._admin(method, path, body)
        auth = headers.get("authorization", "")
        is_control = method == "POST" and path == "/"
        if not auth.startswith("AWS4-HMAC-SHA256"):
            if is_control:
                return self._json11_error(ApiError(
                    "AccessDeniedException", "Missing or unsupported Authorization header "
                    "(expected AWS4-HMAC-SHA256)", 403))
            return self._rest_error(ApiError(
                "AccessForbidden", "Missing or unsupported Authorization header (expected "
                "AWS4-HMAC-SHA256)", 403))
        m = CREDENTIAL_RE.search(auth)
        region = m.group(1) if m and m.group(1) else DEFAULT_REGION
        if is_control:
            return self._control(headers.get("x-amz-target", ""), region, body)
        return self._runtime(method, path, query, region, body)

    # -- admin --
    def _admin(self, method, path, body):
        store = self.store
        if path == "/_emulator/health":
            return self._json(200, {"status": "ok"})
        if path == "/_emulator/flush" and method == "POST":
            return self._json(200, store.flush())
        if path == "/_emulator/stats" and method == "GET":
            snap = self.stats.snapshot()
            snap["offline"] = store.offline_stats()
            snap["faults"] = self.faults.describe()
            return self._json(200, snap)
        if path == "/_emulator/faults" and method == "GET":
            return self._json(200, self.faults.describe())
        if path == "/_emulator/faults" and method == "POST":
            try:
                cfg = json.loads(body or b"{}")
                if not isinstance(cfg, dict):
                    raise ValueError("faults body must be a JSON object")
                return self._json(200, self.faults.configure(cfg))
            except ValueError as exc:
                return self._json(400, {"error": str(exc)})
        if path == "/_emulator/reset" and method == "POST":
            self.faults.configure({})
            out = store.reset()
            self.stats.clear()
            return self._json(200, out)
        return self._json(404, {"error": f"no admin endpoint {method} {path}"})

    # -- control plane --
    def _control(self, amz_target: str, region: str, body: bytes):
        prefix, _, op = amz_target.partition(".")
        if prefix != "SageMaker" or op not in CONTROL_OPS:
            return self._json11_error(ApiError("UnknownOperationException",
                                               f"Unsupported operation {amz_target!r}", 400))
        self.stats.request(op)
        try:
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                raise ApiError("SerializationException", "Request body is not JSON",
                               400) from None
            if not isinstance(req, dict):
                raise ApiError("SerializationException", "Request body must be an object", 400)
            store = self.store
            handler = {
                "CreateFeatureGroup": store.create_feature_group,
                "DescribeFeatureGroup": store.describe_feature_group,
                "ListFeatureGroups": store.list_feature_groups,
                "UpdateFeatureGroup": store.update_feature_group,
                "DeleteFeatureGroup": store.delete_feature_group,
            }[op]
            out = handler(region, req)
        except ApiError as err:
            if err.code == "ValidationError":  # shared helpers use the runtime code
                err = ApiError("ValidationException", err.message, 400)
            self.stats.error(op, err.code)
            return self._json11_error(err)
        return self._json(200, out, JSON11)

    # -- runtime --
    @staticmethod
    def _route(method: str, path: str):
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "FeatureGroup" and parts[2]:
            op = {"PUT": "PutRecord", "GET": "GetRecord", "DELETE": "DeleteRecord"}.get(method)
            return op, unquote(parts[2])
        if len(parts) == 4 and parts[1] == "FeatureGroup" and parts[3] == "ListRecords":
            return ("ListRecords" if method == "POST" else None), unquote(parts[2])
        if method == "POST" and path == "/BatchWriteRecord":
            return "BatchWriteRecord", None
        if method == "POST" and path == "/BatchGetRecord":
            return "BatchGetRecord", None
        return None, None

    def _runtime(self, method, path, query, region, body):
        op, name = self._route(method, path)
        if op is None:
            return self._rest_error(ApiError("UnknownOperationException",
                                             f"No operation for {method} {path}", 404))
        stats = self.stats
        stats.request(op)
        faults = self.faults
        delay = faults.latency()
        if delay:
            time.sleep(delay)
        injected = faults.check()
        if injected is not None:
            stats.error(op, injected.code)
            return self._rest_error(injected)
        try:
            if method in ("PUT", "POST"):
                try:
                    req = json.loads(body) if body else {}
                except ValueError:
                    raise validation("Request body is not valid JSON") from None
                if not isinstance(req, dict):
                    raise validation("Request body must be a JSON object")
            else:
                req = parse_qs(query, keep_blank_values=True)
            out = getattr(self, "_op_" + op)(region, name, req)
        except ApiError as err:
            stats.error(op, err.code)
            return self._rest_error(err)
        return self._json(200, out)

    def _op_PutRecord(self, region, name, req):  # noqa: N802
        store = self.store
        group = store.find_runtime(region, name)
        store.put(group, req.get("Record"), req.get("TargetStores"), req.get("TtlDuration"))
        self.stats.add("PutRecord", "records")
        return None

    def _op_GetRecord(self, region, name, q):  # noqa: N802
        store = self.store
        group = store.find_runtime(region, name)
        rid = (q.get("RecordIdentifierValueAsString") or [None])[0]
        if rid is None:
            raise validation("RecordIdentifierValueAsString is required")
        expiry = (q.get("ExpirationTimeResponse") or ["Disabled"])[0]
        if expiry not in ("Enabled", "Disabled"):
            raise validation("ExpirationTimeResponse must be Enabled or Disabled")
        out = store.get(group, rid, q.get("FeatureName"), expiry == "Enabled")
        if out.get("Record"):
            self.stats.add("GetRecord", "records")
        return out

    def _op_DeleteRecord(self, region, name, q):  # noqa: N802
        store = self.store
        group = store.find_runtime(region, name)
        rid = (q.get("RecordIdentifierValueAsString") or [None])[0]
        event_time = (q.get("EventTime") or [None])[0]
        mode = (q.get("DeletionMode") or [None])[0]
        store.delete(group, rid, event_time, q.get("TargetStores"), mode)
        self.stats.add("DeleteRecord", "records")
        return None

    def _op_ListRecords(self, region, name, req):  # noqa: N802
        store = self.store
        group = store.find_runtime(region, name)
        out = store.list_ids(group, req.get("MaxResults"), req.get("NextToken"),
                             bool(req.get("IncludeSoftDeletedRecords")))
        self.stats.add("ListRecords", "records", len(out["RecordIdentifiers"]))
        return out

    def _op_BatchGetRecord(self, region, _name, req):  # noqa: N802
        store = self.store
        idents = req.get("Identifiers")
        if not isinstance(idents, list) or not 1 <= len(idents) <= 100:
            raise validation("Identifiers must contain 1..100 entries")
        expiry = req.get("ExpirationTimeResponse") or "Disabled"
        if expiry not in ("Enabled", "Disabled"):
            raise validation("ExpirationTimeResponse must be Enabled or Disabled")
        with_expiry = expiry == "Enabled"
        for ident in idents:
            if not isinstance(ident, dict):
                raise validation("Each identifier must be a structure")
            ids = ident.get("RecordIdentifiersValueAsString")
            if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
                raise validation("RecordIdentifiersValueAsString must contain 1..100 values")
        records, errors, unprocessed = [], [], []
        requested = 0
        for ident in idents:
            gname = ident.get("FeatureGroupName")
            ids = ident["RecordIdentifiersValueAsString"]
            requested += len(ids)
            try:
                group = store.find_runtime(region, gname)
                if not group.online:
                    raise validation(f"Feature group {group.name} has no online store")
                wanted = store._feature_filter(group, ident.get("FeatureNames"))
            except ApiError as err:
                for rid in ids:
                    errors.append({"FeatureGroupName": gname, "RecordIdentifierValueAsString": rid,
                                   "ErrorCode": err.code, "ErrorMessage": err.message})
                continue
            skipped = []
            found = []
            with store.lock:
                now_ns = time.time_ns()
                for rid in ids:
                    if self.faults.draw("unprocessed_get_rate"):
                        skipped.append(rid)
                        continue
                    cur = store._live(group, rid, now_ns) if isinstance(rid, str) else None
                    if cur is None or cur.deleted:
                        continue
                    found.append((rid, cur.record, cur.expires_ns))
            for rid, record, expires in found:
                item = {"FeatureGroupName": group.name, "RecordIdentifierValueAsString": rid}
                item.update(store._render(record, expires, wanted, with_expiry))
                item.setdefault("Record", [])
                records.append(item)
            if skipped:
                entry = dict(ident)
                entry["RecordIdentifiersValueAsString"] = skipped
                unprocessed.append(entry)
        stats = self.stats
        stats.add("BatchGetRecord", "identifiers", requested)
        stats.add("BatchGetRecord", "records", len(records))
        stats.add("BatchGetRecord", "unprocessed", sum(len(u["RecordIdentifiersValueAsString"])
                                                       for u in unprocessed))
        for e in errors:
            stats.add("BatchGetRecord", "entry_errors")
            stats.error("BatchGetRecord", e["ErrorCode"])
        return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": unprocessed}

    def _op_BatchWriteRecord(self, region, _name, req):  # noqa: N802
        store = self.store
        entries = req.get("Entries")
        if not isinstance(entries, list) or not 1 <= len(entries) <= 25:
            raise validation("Entries must contain 1..25 entries")
        default_ttl = req.get("TtlDuration")
        if default_ttl is not None:
            ttl_seconds(default_ttl)
        errors, unprocessed, prepared = [], [], []
        for entry in entries:
            if self.faults.draw("unprocessed_rate"):
                unprocessed.append(entry)
                continue
            try:
                if not isinstance(entry, dict):
                    raise validation("Each entry must be a structure")
                group = store.find_runtime(region, entry.get("FeatureGroupName"))
                targets = store._target_stores(group, entry.get("TargetStores"))
                rid, event_ns, values = store._validate_record(group, entry.get("Record"))
                ttl = entry.get("TtlDuration")
                ttl_secs = store._effective_ttl(group, ttl if ttl is not None else default_ttl)
                prepared.append((group, rid, event_ns, values, entry["Record"], targets,
                                 ttl_secs, store.api_time_us()))
            except ApiError as err:
                errors.append({"Entry": entry, "ErrorCode": err.code,
                               "ErrorMessage": err.message})
        with store.lock:
            now_ns = time.time_ns()
            for args in prepared:
                group = args[0]
                if store.groups.get((group.region, group.name)) is group:  # not deleted since
                    store._apply_put(*args, now_ns)
        stats = self.stats
        stats.add("BatchWriteRecord", "entries", len(entries))
        stats.add("BatchWriteRecord", "records", len(prepared))
        stats.add("BatchWriteRecord", "unprocessed", len(unprocessed))
        for e in errors:
            stats.add("BatchWriteRecord", "entry_errors")
            stats.error("BatchWriteRecord", e["ErrorCode"])
        return {"Errors": errors, "UnprocessedEntries": unprocessed}


# ---- HTTP server --------------------------------------------------------------------------

class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
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

    def _loop(self, sock, rfile, app: App):
        quickack = getattr(socket, "TCP_QUICKACK", 0)
        while not app.closing:
            line = rfile.readline(65537)
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
                h = rfile.readline(65537)
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
                body = self._read_chunked(rfile)
            else:
                length = int(headers.get("content-length") or 0)
                body = rfile.read(length) if length else b""
                if len(body) < length:
                    return
            conn = headers.get("connection", "").lower()
            keep = (conn != "close") if version == "HTTP/1.1" else (conn == "keep-alive")
            started = time.perf_counter()
            try:
                status, ctype, payload, extra = app.handle(method, target, headers, body)
            except Exception:  # noqa: BLE001
                app.log("unhandled error:\n" + traceback.format_exc())
                status, ctype, extra = 500, RESTJSON, "x-amzn-ErrorType: InternalFailure\r\n"
                payload = b'{"__type":"InternalFailure","message":"emulator bug"}'
            if app.log_requests:
                app.log(f"{method} {target} -> {status} "
                        f"({(time.perf_counter() - started) * 1000:.1f} ms)")
            if app.closing:
                keep = False
            head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                    f"x-amzn-RequestId: {uuid.uuid4()}\r\n{extra}"
                    f"{'' if keep else 'Connection: close' + chr(13) + chr(10)}\r\n")
            sock.sendall(head.encode("latin-1") + payload)
            if not keep:
                return

    @staticmethod
    def _read_chunked(rfile) -> bytes:
        chunks = []
        while True:
            size = int(rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline(65537)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    block_on_close = False

    def __init__(self, address, app: App):
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


def _log(msg: str) -> None:
    sys.stderr.write(f"[local-feature-store] {msg}\n")
    sys.stderr.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Local SageMaker Feature Store emulator")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", required=True, help="offline store root (s3://b/k -> "
                        "DIR/b/k)")
    parser.add_argument("--flush-interval", type=float, default=2.0,
                        help="seconds between offline-store flushes (<=0: only on demand)")
    parser.add_argument("--describe-page-size", type=int, default=100,
                        help="FeatureDefinitions per DescribeFeatureGroup page")
    parser.add_argument("--log-requests", action="store_true")
    args = parser.parse_args(argv)
    if args.describe_page_size < 1:
        parser.error("--describe-page-size must be >= 1")

    os.makedirs(args.data_dir, exist_ok=True)
    store = FeatureStore(args.data_dir, args.describe_page_size, log=_log)
    app = App(store, log_requests=args.log_requests, log=_log)
    server = Server((args.host, args.port), app)
    host, port = server.server_address[:2]
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="serve", daemon=True)
    serve.start()

    def flusher():
        while not stop.wait(args.flush_interval):
            store.flush()

    if args.flush_interval > 0:
        threading.Thread(target=flusher, name="flusher", daemon=True).start()

    url_host = f"[{host}]" if ":" in host else host
    print(f"local feature store ready on http://{url_host}:{port} (data dir "
          f"{os.path.abspath(args.data_dir)})", flush=True)
    while not stop.wait(0.5):
        pass
    app.closing = True
    server.shutdown()
    server.server_close()
    result = store.flush()
    _log(f"stopped; final flush wrote {result['rows']} rows in {result['files']} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
