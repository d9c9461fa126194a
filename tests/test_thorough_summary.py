"""tools/thorough_summary.py reads `make thorough`'s logs right (hand-written logs)."""

from __future__ import annotations

from tools import thorough_summary as summary

GREEN = """\
============================ Hypothesis Statistics =============================
tests/test_a.py::test_prop[relu]:

  - during reuse phase (0.01 seconds):
    - 3 passing, 0 failing, and 0 invalid test cases

  - during generate phase (5.00 seconds):
    - 1997 passing, 0 failing, and 12 invalid test cases

  - Stopped because settings.max_examples=2000

tests/test_a.py::test_prop[tanh]:

  - during generate phase (4.00 seconds):
    - 2000 passing, 0 failing, and 1 invalid test cases

12 passed, 1 warning in 9.50s
"""

FAILED = """\
tests/test_b.py::test_prop:

  - during generate phase (1.00 seconds):
    - 10 passing, 1 failing, and 0 invalid test cases

  - during shrink phase (1.00 seconds):
    - 0 passing, 7 failing, and 0 invalid test cases

1 failed, 3 passed in 2.00s
"""

KILLED = """\
.....Fatal Python error: Aborted

Current thread 0x00007f (most recent call first):
"""


def test_counts_phases_and_parametrised_properties():
    s = summary.summarise(GREEN)
    assert (s["properties"], s["passing"], s["failing"], s["invalid"]) == (2, 4000, 0, 13)
    assert s["green"]


def test_failures_and_aborted_modules_are_not_green(tmp_path):
    assert not summary.summarise(FAILED)["green"]
    assert summary.summarise(FAILED)["failing"] == 8
    assert not summary.summarise(KILLED)["green"]
    for name, text in (("test_a.py", GREEN), ("test_b.py", FAILED)):
        (tmp_path / f"{name}.thorough.log").write_text(text)
    assert summary.main([str(tmp_path / "test_a.py.thorough.log")]) == 0
    assert summary.main([str(p) for p in sorted(tmp_path.glob("*.log"))]) == 1
