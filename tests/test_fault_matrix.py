"""A small fault matrix (`make faults` runs the full one at 100,000 records): every scenario
ends with the target in the expected state, failures accounted for and the report balanced."""

from __future__ import annotations

import fault_matrix


def test_small_fault_matrix(capsys):
    code = fault_matrix.main(["--records", "1500", "--outage-seconds", "4",
                              "--retry-budget-seconds", "60", "--throttle-tps", "20"])
    table = capsys.readouterr().out
    assert code == 0, table
    lines = [ln for ln in table.splitlines() if ln.endswith((" yes", " NO"))]
    assert len(lines) == 7 and all(ln.endswith(" yes") for ln in lines), table
