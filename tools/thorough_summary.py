"""Sum up a ``make thorough`` run: ``python tools/thorough_summary.py [LOG ...]``.

``make thorough`` leaves one ``tests/<module>.thorough.log`` per test module
(pytest's ``-q`` output with ``--hypothesis-show-statistics``).  This reads them
(default: every ``tests/*.thorough.log``) and prints, per module, pytest's last
line and its properties' counts — properties run (a parametrised property counts
once per parameter set), passing, failing and invalid examples — then the
totals.  Exit status 1 when a module's log is not a finished, green pytest run
(a process killed inside XLA leaves no summary line), or any example failed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_TEST = re.compile(r"^(tests/\S+::\S+):\s*$")
_COUNTS = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid")
_GREEN = re.compile(r"^=*\s*\d+ passed(?!.*\b(failed|error)).* in [\d.]+s")


def summarise(text: str) -> dict:
    """Counts from one module's log: ``properties`` (tests with statistics), and
    ``passing``/``failing``/``invalid`` examples summed over all their phases."""
    out = {"properties": 0, "passing": 0, "failing": 0, "invalid": 0}
    current, counted = None, set()
    for line in text.splitlines():
        m = _TEST.match(line.strip())
        if m:
            current = m.group(1)
            continue
        c = _COUNTS.search(line)
        if c and current is not None:
            counted.add(current)
            for key, value in zip(("passing", "failing", "invalid"), c.groups()):
                out[key] += int(value)
    out["properties"] = len(counted)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    out["last"] = lines[-1].strip(" =") if lines else "(empty log)"
    out["green"] = bool(lines) and bool(_GREEN.match(lines[-1].strip()))
    return out


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        paths = sorted(Path("tests").glob("*.thorough.log"))
    if not paths:
        print("no tests/*.thorough.log: run `make thorough` first")
        return 1
    total = {"properties": 0, "passing": 0, "failing": 0, "invalid": 0}
    ok = True
    for path in paths:
        s = summarise(path.read_text(errors="replace"))
        ok &= s["green"] and s["failing"] == 0
        for key in total:
            total[key] += s[key]
        name = path.name.removesuffix(".thorough.log")
        print(f"{name:32s} {s['properties']:3d} properties {s['passing']:7d} passing "
              f"{s['failing']:3d} failing {s['invalid']:7d} invalid | {s['last']}")
    print(f"{len(paths)} modules, {'all green' if ok else 'NOT all green'}: "
          f"{total['properties']} properties, {total['passing']} passing examples, "
          f"{total['failing']} failing, {total['invalid']} invalid")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
