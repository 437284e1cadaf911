"""A small fault matrix (`make faults` runs all seven scenarios at 100,000 records): each
ends with the target in the expected state, failures accounted for and the report balanced.
Two scenarios here (each is a spark-submit); SIGTERM and the killed driver have their own
end-to-end tests (test_e2e_signals, test_e2e_resume)."""

from __future__ import annotations

import fault_matrix


def test_small_fault_matrix(capsys):
    code = fault_matrix.main(["--records", "1500", "--outage-seconds", "4",
                              "--retry-budget-seconds", "60", "--throttle-tps", "20",
                              "--only", "resets,outage"])
    table = capsys.readouterr().out
    assert code == 0, table
    lines = [ln for ln in table.splitlines() if ln.endswith((" yes", " NO"))]
    assert len(lines) == 2 and all(ln.endswith(" yes") for ln in lines), table
