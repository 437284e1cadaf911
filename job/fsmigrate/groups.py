"""Feature group specs from DescribeFeatureGroup, and the source/target compatibility report."""

from __future__ import annotations

from dataclasses import dataclass

INTEGRAL = "Integral"
FRACTIONAL = "Fractional"
STRING = "String"


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # Integral | Fractional | String
    collection: str | None = None  # List | Set | Vector, only on InMemory online stores


@dataclass(frozen=True)
class FeatureMapping:
    """One target feature and the source feature its values come from."""

    name: str
    source: Feature | None  # None: target-only feature left empty (when allowed)
    target: Feature
