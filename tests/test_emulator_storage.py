"""The emulator's compact storage (feature_store_emulator/online.py, offline.py): a stored
record comes back exactly as sent, a held record costs a few hundred bytes rather than a dict
per feature, and the offline buffer's columns line up when features are added."""

from __future__ import annotations

import json
import tracemalloc

from feature_store_emulator.groups import Feature, Group
from feature_store_emulator.offline import Pending
from feature_store_emulator.online import OnlineTable


def _values(record: list[dict]) -> dict:
    """What records.validate_record hands the store: name -> value, in the order sent."""
    return {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList"))
            for fv in record}


def test_stored_record_round_trips_exactly():
    records = [
        [{"FeatureName": "id", "ValueAsString": "a"},
         {"FeatureName": "empty", "ValueAsString": ""},
         {"FeatureName": "odd", "ValueAsString": "tab\tquote\"é☃𝄞 \\ \x00"},
         {"FeatureName": "none", "ValueAsStringList": []},
         {"FeatureName": "one_empty", "ValueAsStringList": [""]},
         {"FeatureName": "list", "ValueAsStringList": ["x", "", "y z", "é"]}],
        # other names in another order: its own name tuple, the order kept
        [{"FeatureName": "list", "ValueAsStringList": ["", ""]},
         {"FeatureName": "id", "ValueAsString": "b"}],
        [{"FeatureName": "id", "ValueAsString": "c"}],
    ]
    table = OnlineTable()
    for i, record in enumerate(records):
        assert table.put(record[0 if i != 1 else 1]["ValueAsString"], _values(record),
                         event_ns=10, ttl_secs=None, now_ns=0)
    assert [table.get(rid, 0) for rid in "abc"] == [(r, None) for r in records]
    # an older write leaves the record alone; a soft delete hides it
    assert not table.put("a", {"id": "a"}, event_ns=5, ttl_secs=None, now_ns=0)
    assert table.get("a", 0) == (records[0], None)
    assert table.delete("a", 11, "t", hard=False, now_ns=0)
    assert table.get("a", 0) is None
    assert table.page(None, 10, include_deleted=True, now_ns=0) == (["a", "b", "c"], None)


def test_held_record_costs_a_few_hundred_bytes():
    """22 features as parsed from a request body: kept as FeatureValue dicts they cost about
    7,500 bytes a record; the compact form keeps well under 1,000."""
    n = 2000
    names = ["record_id", "event_time"] + [f"feature_{k:02d}" for k in range(20)]
    bodies = [json.dumps([{"FeatureName": name, "ValueAsString": f"{name[-2:]}-{i}-{k * 7.5}"}
                          for k, name in enumerate(names)]) for i in range(n)]
    table = OnlineTable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, body in enumerate(bodies):
            values = _values(json.loads(body))  # a request's strings, as the server has them
            table.put(values["record_id"], values, event_ns=i, ttl_secs=None, now_ns=0)
            del values
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == n
    assert held / n < 1000, f"{held / n:.0f} bytes per held record"
    assert table.get(f"id-{n - 1}-0.0", 0) == (json.loads(bodies[-1]), None)


def test_offline_buffer_columns_line_up_when_features_are_added():
    group = Group("us-east-1", "g")
    for name, ftype in (("id", "String"), ("t", "String"), ("v", "Integral")):
        group.add_feature(Feature(name, ftype))
    pending = Pending()
    pending.add(group, {"id": "a", "t": "t1", "v": "1"}, 1, 10, False, 0.0)
    pending.add(group, {"id": "b", "t": "t2"}, 2, 11, True, 1.0)  # a delete marker
    group.add_feature(Feature("w", "String"))  # UpdateFeatureGroup adds one
    pending.add(group, {"id": "c", "t": "t3", "v": "3", "w": "new"}, 3, 12, False, 2.0)
    assert pending.columns == {"id": ["a", "b", "c"], "t": ["t1", "t2", "t3"],
                               "v": ["1", None, "3"], "w": [None, None, "new"]}
    head = pending.split(2)
    assert (len(head), len(pending)) == (2, 1)
    assert head.columns["w"] == [None, None] and pending.columns["w"] == ["new"]
    assert (head.event_ns, head.api_us, head.deleted, head.due) == (
        [1, 2], [10, 11], [False, True], [0.0, 1.0])
    assert (pending.event_ns, pending.deleted, pending.due) == ([3], [False], [2.0])
