"""Feature groups: their definition, CreateFeatureGroup/UpdateFeatureGroup validation and
the DescribeFeatureGroup/ListFeatureGroups views (control plane, JSON 1.1)."""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ApiError, cp_validation
from .online import OnlineTable
from .utils import ACCOUNT, encode_token, ttl_seconds

NAME_RE = re.compile(r"[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}")
S3_URI_RE = re.compile(r"s3://([^/]+)/?(.*)")
RESERVED_FEATURES = frozenset({"is_deleted", "write_time", "api_invocation_time"})
FEATURE_TYPES = ("Integral", "Fractional", "String")
COLLECTION_TYPES = ("List", "Set", "Vector")
STORAGE_TYPES = ("Standard", "Standard_V2", "InMemory")
THROUGHPUT_MODES = ("OnDemand", "Provisioned")
MAX_FEATURES = 2500
ONLINE, OFFLINE = "OnlineStore", "OfflineStore"


@dataclass(slots=True)
class Feature:
    name: str
    type: str  # Integral | Fractional | String
    collection: str | None = None  # List | Set | Vector (InMemory online stores only)
    dimension: int | None = None  # Vector only

    def describe(self) -> dict:
        out = {"FeatureName": self.name, "FeatureType": self.type}
        if self.collection:
            out["CollectionType"] = self.collection
            if self.collection == "Vector":
                out["CollectionConfig"] = {"VectorConfig": {"Dimension": self.dimension}}
        return out


@dataclass(eq=False)  # identity hash: the offline buffer keys on the group object
class Group:
    region: str
    name: str
    arn: str = ""
    features: list[Feature] = field(default_factory=list)
    by_name: dict[str, Feature] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # name -> C, I, F or S (fast path)
    record_id: str = ""
    event_time: str = ""
    online: bool = False
    offline: bool = False
    online_config: dict = field(default_factory=dict)
    offline_config: dict = field(default_factory=dict)
    offline_status: str = "Active"  # Active | Blocked | Disabled (DESIGN.md §2)
    offline_blocked_reason: str | None = None
    resolved_output_uri: str = ""
    throughput: dict = field(default_factory=lambda: {"ThroughputMode": "OnDemand"})
    ttl_seconds: int | None = None  # the online store's default TtlDuration
    creation: float = field(default_factory=time.time)
    last_modified: float | None = None
    role_arn: str | None = None
    description: str | None = None
    tags: list = field(default_factory=list)
    online_records: OnlineTable = field(default_factory=OnlineTable)

    def __post_init__(self) -> None:
        self.arn = f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:feature-group/{self.name.lower()}"

    def add_feature(self, feat: Feature) -> None:
        self.features.append(feat)
        self.by_name[feat.name] = feat
        self.kinds[feat.name] = "C" if feat.collection else feat.type[0]

    @property
    def stores(self) -> tuple[str, ...]:
        return (ONLINE,) * self.online + (OFFLINE,) * self.offline

    def offline_features(self) -> list[tuple[str, str]]:
        return [(f.name, f.type) for f in self.features]

    def describe(self, start: int, page: int) -> dict:
        out = {
            "FeatureGroupArn": self.arn,
            "FeatureGroupName": self.name,
            "RecordIdentifierFeatureName": self.record_id,
            "EventTimeFeatureName": self.event_time,
            "FeatureDefinitions": [f.describe() for f in self.features[start:start + page]],
            "CreationTime": self.creation,
            "FeatureGroupStatus": "Created",
            "ThroughputConfig": dict(self.throughput),
            "NextToken": "",
        }
        if start + page < len(self.features):
            out["NextToken"] = encode_token({"g": self.arn, "o": start + page})
        if self.online_config:
            out["OnlineStoreConfig"] = copy.deepcopy(self.online_config)
        if self.offline_config:
            out["OfflineStoreConfig"] = copy.deepcopy(self.offline_config)
            out["OfflineStoreStatus"] = self.offline_store_status()
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
            out["OfflineStoreStatus"] = self.offline_store_status()
        return out

    def offline_store_status(self) -> dict:
        """The sagemaker model's OfflineStoreStatus: {Status, BlockedReason?}."""
        out = {"Status": self.offline_status}
        if self.offline_blocked_reason:
            out["BlockedReason"] = self.offline_blocked_reason
        return out


def parse_feature(fd: Any, allow_collections: bool, seen: set[str]) -> Feature:
    """One FeatureDefinition; ``seen`` (lower-case names so far) catches duplicates."""
    if not isinstance(fd, dict):
        raise cp_validation("FeatureDefinition must be a structure")
    name, ftype = fd.get("FeatureName"), fd.get("FeatureType")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise cp_validation(f"Invalid FeatureName '{name}': must match {NAME_RE.pattern}")
    if name.lower() in RESERVED_FEATURES:
        raise cp_validation(f"FeatureName '{name}' is reserved (is_deleted, write_time, "
                            f"api_invocation_time)")
    if name.lower() in seen:
        raise cp_validation(f"Duplicate FeatureName '{name}' in FeatureDefinitions")
    seen.add(name.lower())
    if ftype not in FEATURE_TYPES:
        raise cp_validation(f"FeatureType of '{name}' must be one of {', '.join(FEATURE_TYPES)}")
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


def new_group(region: str, req: dict) -> Group:
    """A Group from a CreateFeatureGroup request (not yet registered)."""
    name = req.get("FeatureGroupName")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise cp_validation(f"Invalid FeatureGroupName '{name}': must match {NAME_RE.pattern}")
    defs = req.get("FeatureDefinitions")
    if not isinstance(defs, list) or not defs:
        raise cp_validation("FeatureDefinitions must contain at least 1 feature")
    if len(defs) > MAX_FEATURES:
        raise cp_validation(f"FeatureDefinitions must contain at most {MAX_FEATURES} features")
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
        group.add_feature(parse_feature(fd, in_memory, seen))
    _set_keys(group, req.get("RecordIdentifierFeatureName"), req.get("EventTimeFeatureName"))
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
        _set_offline(group, offline_cfg)
    tp = req.get("ThroughputConfig")
    if tp:
        if tp.get("ThroughputMode") not in THROUGHPUT_MODES:
            raise cp_validation("ThroughputMode must be OnDemand or Provisioned")
        group.throughput = dict(tp)
    group.role_arn = req.get("RoleArn")
    group.description = req.get("Description")
    group.tags = req.get("Tags") or []
    return group


def _set_keys(group: Group, rid: Any, evt: Any) -> None:
    by_name = group.by_name
    if rid not in by_name:
        raise cp_validation(f"RecordIdentifierFeatureName '{rid}' is not a defined feature")
    if evt not in by_name:
        raise cp_validation(f"EventTimeFeatureName '{evt}' is not a defined feature")
    if by_name[rid].type not in ("Integral", "String") or by_name[rid].collection:
        raise cp_validation("The record identifier feature must be Integral or String")
    if by_name[evt].type not in ("Fractional", "String") or by_name[evt].collection:
        raise cp_validation("The event time feature must be Fractional or String")
    if rid == evt:
        raise cp_validation("RecordIdentifierFeatureName and EventTimeFeatureName must differ")
    group.record_id, group.event_time = rid, evt


def _set_offline(group: Group, offline_cfg: Any) -> None:
    s3 = (offline_cfg.get("S3StorageConfig") or {}) if isinstance(offline_cfg, dict) else {}
    uri = s3.get("S3Uri")
    if not isinstance(uri, str) or not S3_URI_RE.fullmatch(uri):
        raise cp_validation("OfflineStoreConfig.S3StorageConfig.S3Uri must be an "
                            "s3://bucket[/prefix] URI")
    table_format = offline_cfg.get("TableFormat") or "Glue"
    if table_format not in ("Default", "Glue", "Iceberg"):
        raise cp_validation("TableFormat must be one of Default, Glue, Iceberg")
    group.offline = True
    created = int(group.creation)
    # ResolvedOutputS3Uri ends at /data (DESIGN.md §2: offline store layout)
    group.resolved_output_uri = (f"{uri.rstrip('/')}/{ACCOUNT}/sagemaker/{group.region}/"
                                 f"offline-store/{group.name}-{created}/data")
    s3_out = {"S3Uri": uri, "ResolvedOutputS3Uri": group.resolved_output_uri}
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
            "TableName": f"{group.name}-{created}".lower().replace("-", "_"),
            "Catalog": "AwsDataCatalog", "Database": "sagemaker_featurestore"}
    group.offline_config = cfg


def update_group(group: Group, req: dict) -> None:
    """Apply an UpdateFeatureGroup request: everything is checked before anything changes."""
    additions = req.get("FeatureAdditions")
    online_update = req.get("OnlineStoreConfig")
    throughput = req.get("ThroughputConfig")
    if additions is not None and online_update is not None:
        raise cp_validation("Use only one of FeatureAdditions and OnlineStoreConfig per "
                            "UpdateFeatureGroup call")
    new_features = []
    if additions is not None:
        if not isinstance(additions, list) or not 1 <= len(additions) <= 100:
            raise cp_validation("FeatureAdditions must contain 1..100 features")
        if len(group.features) + len(additions) > MAX_FEATURES:
            raise ApiError("ResourceLimitExceeded", f"A feature group can have at most "
                           f"{MAX_FEATURES} features", 400)
        seen = {f.name.lower() for f in group.features}
        in_memory = group.online_config.get("StorageType") == "InMemory"
        new_features = [parse_feature(fd, in_memory, seen) for fd in additions]
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
        if mode is not None and mode not in THROUGHPUT_MODES:
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
