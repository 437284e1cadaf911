"""Feature group specs from DescribeFeatureGroup, and the source/target compatibility report."""

from __future__ import annotations

from dataclasses import dataclass

from . import aws
from .aws import AwsSettings
from .errors import Aborted, BadInput

INTEGRAL = "Integral"
FRACTIONAL = "Fractional"
STRING = "String"


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # Integral | Fractional | String
    collection: str | None = None  # List | Set | Vector, only on InMemory online stores
    dimension: int | None = None  # Vector only: CollectionConfig.VectorConfig.Dimension


@dataclass(frozen=True)
class FeatureMapping:
    """One target feature and the source feature its values come from."""

    name: str
    source: Feature | None  # None: target-only feature left empty (when allowed)
    target: Feature

ONLINE_STORE = "OnlineStore"
OFFLINE_STORE = "OfflineStore"


@dataclass(frozen=True)
class GroupSpec:
    name: str
    record_id: str
    event_time: str
    features: tuple[Feature, ...]
    online: bool
    offline: bool
    storage_type: str | None = None  # Standard | InMemory
    offline_uri: str | None = None  # ResolvedOutputS3Uri (ends at /data)
    table_format: str | None = None  # Glue | Iceberg
    ttl_seconds: int | None = None  # online store default TTL
    status: str = "Created"
    offline_status: str | None = None  # OfflineStoreStatus.Status: Active | Blocked | Disabled

    @property
    def kind(self) -> str:
        return "+".join(k for k, on in (("online", self.online), ("offline", self.offline)) if on)

    @property
    def stores(self) -> tuple[str, ...]:
        return tuple(s for s, on in ((ONLINE_STORE, self.online), (OFFLINE_STORE, self.offline))
                     if on)

    @property
    def is_iceberg(self) -> bool:
        """Its offline store is an Iceberg table: files tracked by table metadata, which this
        job neither reads nor clears."""
        return self.offline and (self.table_format or "Glue") == "Iceberg"

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)


_TTL_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}


def ttl_to_seconds(ttl: dict | None) -> int | None:
    if not ttl:
        return None
    return int(ttl["Value"]) * _TTL_UNIT_SECONDS[ttl["Unit"]]


def _dimension(definition: dict) -> int | None:
    """A Vector feature's length (sagemaker model: CollectionConfig.VectorConfig.Dimension)."""
    if definition.get("CollectionType") != "Vector":
        return None
    dim = ((definition.get("CollectionConfig") or {}).get("VectorConfig") or {}).get("Dimension")
    return int(dim) if dim is not None else None


def spec_from_description(desc: dict) -> GroupSpec:
    online_cfg = desc.get("OnlineStoreConfig") or {}
    offline_cfg = desc.get("OfflineStoreConfig") or {}
    s3 = offline_cfg.get("S3StorageConfig") or {}
    return GroupSpec(
        name=desc["FeatureGroupName"],
        record_id=desc["RecordIdentifierFeatureName"],
        event_time=desc["EventTimeFeatureName"],
        features=tuple(
            Feature(d["FeatureName"], d["FeatureType"], d.get("CollectionType"),
                    _dimension(d))
            for d in desc.get("FeatureDefinitions", [])
        ),
        online=bool(online_cfg.get("EnableOnlineStore")),
        offline=bool(offline_cfg),
        storage_type=online_cfg.get("StorageType") or ("Standard" if online_cfg else None),
        offline_uri=s3.get("ResolvedOutputS3Uri") or s3.get("S3Uri"),
        table_format=offline_cfg.get("TableFormat") or ("Glue" if offline_cfg else None),
        ttl_seconds=ttl_to_seconds(online_cfg.get("TtlDuration")),
        status=desc.get("FeatureGroupStatus", "Created"),
        offline_status=(desc.get("OfflineStoreStatus") or {}).get("Status"),
    )


def describe(aws_settings: AwsSettings, name: str, role: str) -> GroupSpec:
    """The spec of a group; BadInput when it doesn't exist, Aborted when we may not look."""
    client = aws.control_client(aws_settings)
    try:
        return spec_from_description(aws.describe_feature_group(client, name))
    except Exception as exc:
        if getattr(exc, "operation_name", "") == "AssumeRole":
            raise  # the environment's problem, said in one line by the caller
        code = aws.error_code(exc)
        if code in ("ResourceNotFound", "ResourceNotFoundException", "ValidationException"):
            raise BadInput(f"{role} feature group {name} not found in "
                           f"{aws_settings.describe()}: check the name and aws.{role}.region "
                           "(or aws.region)") from None
        if aws.classify(code) == aws.SYSTEMIC:
            raise Aborted(f"cannot describe {role} feature group {name} "
                          f"({aws_settings.describe()}): {code}") from None
        raise


# ---- compatibility -------------------------------------------------------------------------

OK = "ok"
CONVERTED = "converted"
DROPPED = "dropped"  # source-only: not sent
EMPTY = "left empty"  # target-only, allowed by missing_features: empty
MISSING = "missing in source"
INCOMPATIBLE = "incompatible"

_WIDENING = {(INTEGRAL, FRACTIONAL), (INTEGRAL, STRING), (FRACTIONAL, STRING)}


@dataclass(frozen=True)
class FeatureVerdict:
    name: str
    source: str | None  # e.g. "Integral" or "String List"
    target: str | None
    verdict: str
    reason: str = ""


@dataclass(frozen=True)
class Compatibility:
    verdicts: tuple[FeatureVerdict, ...]
    problems: tuple[str, ...]  # group-level problems (ids, event time, status)
    mappings: tuple[FeatureMapping, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and not any(
            v.verdict in (INCOMPATIBLE, MISSING) for v in self.verdicts)

    def first_problem(self) -> str:
        if self.problems:
            return self.problems[0]
        bad = next(v for v in self.verdicts if v.verdict in (INCOMPATIBLE, MISSING))
        return f"feature {bad.name}: {bad.verdict} ({bad.reason})"

    def as_rows(self) -> list[dict]:
        return [v.__dict__ for v in self.verdicts]


def _describe(f: Feature | None) -> str | None:
    if f is None:
        return None
    if f.collection == "Vector" and f.dimension is not None:
        return f"{f.type} Vector({f.dimension})"
    return f"{f.type} {f.collection}" if f.collection else f.type


def _verdict(src: Feature, tgt: Feature) -> tuple[str, str]:
    if (src.collection is None) != (tgt.collection is None):
        return INCOMPATIBLE, "collection type differs"
    if src.collection and src.collection != tgt.collection:
        return INCOMPATIBLE, f"collection {src.collection} -> {tgt.collection}"
    if src.dimension != tgt.dimension:  # the service refuses a vector of another length
        return INCOMPATIBLE, f"vector dimension {src.dimension} -> {tgt.dimension}"
    if src.type == tgt.type:
        return OK, ""
    if (src.type, tgt.type) in _WIDENING:
        return CONVERTED, f"{src.type} values sent as {tgt.type}"
    return INCOMPATIBLE, f"{src.type} cannot be written as {tgt.type}"


def check_compatibility(source: GroupSpec, target: GroupSpec,
                        missing_features: str = "error") -> Compatibility:
    """Every feature with its verdict; ids and event time must match by name."""
    problems = []
    for spec in (source, target):
        if spec.status != "Created":
            problems.append(f"feature group {spec.name} is {spec.status}, not Created: "
                            "wait until it is Created")
    if source.record_id != target.record_id:
        problems.append(f"record identifier differs: source {source.record_id}, "
                        f"target {target.record_id}")
    if source.event_time != target.event_time:
        problems.append(f"event time feature differs: source {source.event_time}, "
                        f"target {target.event_time}")

    verdicts: list[FeatureVerdict] = []
    mappings: list[FeatureMapping] = []
    for tgt in target.features:
        src = source.feature(tgt.name)
        if src is None:
            required = tgt.name in (target.record_id, target.event_time)
            if missing_features == "empty" and not required:
                verdicts.append(FeatureVerdict(tgt.name, None, _describe(tgt), EMPTY,
                                               "not in source; left empty"))
                mappings.append(FeatureMapping(tgt.name, None, tgt))
            else:
                verdicts.append(FeatureVerdict(
                    tgt.name, None, _describe(tgt), MISSING,
                    "not in source; set migration.missing_features: empty to leave it empty"))
            continue
        verdict, reason = _verdict(src, tgt)
        if tgt.name == target.event_time and verdict == CONVERTED:
            verdict, reason = INCOMPATIBLE, "event time types must match"
        verdicts.append(FeatureVerdict(tgt.name, _describe(src), _describe(tgt), verdict, reason))
        if verdict != INCOMPATIBLE:
            mappings.append(FeatureMapping(tgt.name, src, tgt))
    for src in source.features:
        if target.feature(src.name) is None:
            verdicts.append(FeatureVerdict(src.name, _describe(src), None, DROPPED,
                                           "not in target; not sent"))
    return Compatibility(tuple(verdicts), tuple(problems), tuple(mappings))


def check_groups(source: GroupSpec, target: GroupSpec, missing_features: str,
                 ttl: str) -> Compatibility:
    """The compatibility of the pair; BadInput (table printed) when it can't be migrated."""
    compat = check_compatibility(source, target, missing_features)
    if not compat.ok:
        print(compat_table(compat))
        raise BadInput(f"{source.name} -> {target.name} is not compatible: "
                       f"{compat.first_problem()}")
    if ttl == "none" and target.ttl_seconds:
        raise BadInput(f"migration.ttl: none, but {target.name} expires records "
                       f"{target.ttl_seconds} s after their event time by default and a record "
                       "cannot opt out: use ttl: target_default or a target without a default TTL")
    return compat


def compat_table(compat: Compatibility, indent: str = "") -> str:
    """The compatibility report: every feature with its verdict."""
    lines = [f"{indent}Compatibility report"]
    lines += [f"{indent}  problem: {p}" for p in compat.problems]
    for v in compat.verdicts:
        arrow = f"{v.source or '-'} -> {v.target or '-'}"
        reason = f"  ({v.reason})" if v.reason else ""
        lines.append(f"{indent}  {v.name:<32} {arrow:<28} {v.verdict}{reason}")
    return "\n".join(lines)
