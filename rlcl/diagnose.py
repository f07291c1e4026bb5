"""``python -m rlcl.diagnose RUN_DIR``: read a run without TensorBoard.

Prints the first update at which each divergence signal crossed its threshold
(diagnostics.THRESHOLDS), the smoothness figures at the start, middle and end of the run, and
what the divergence guard did (divergence.json).
"""

from __future__ import annotations

import json
import operator
import sys
from pathlib import Path

from rlcl.checkpoint import DIVERGENCE, run_config_path
from rlcl.diagnostics import SMOOTH_TAGS, THRESHOLDS
from rlcl.errors import RlclError
from rlcl.logger import read_scalars

OPS = {">": operator.gt, "<": operator.lt}


def report(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    run_config_path(run_dir)  # the one "is this a run folder" check (rlcl/checkpoint.py)
    scalars = read_scalars(run_dir)
    if not scalars:
        raise RlclError(f"{run_dir} holds no TensorBoard events; is it an rlcl run folder?")
    lines = [f"run: {run_dir}", "", "divergence signals (first crossing):",
             f"  {'signal':26} {'threshold':>11} {'first step':>11} {'value':>11}"]
    for tag, (op, level) in THRESHOLDS.items():
        series = scalars.get(tag, [])
        hit = next(((s, v) for s, v in series if OPS[op](v, level)), None)
        where = ("never", "") if hit is None else (f"{hit[0]:,}", f"{hit[1]:.4g}")
        missing = " (not logged)" if not series else ""
        lines.append(f"  {tag:26} {op + ' ' + format(level, 'g'):>11} {where[0]:>11} "
                     f"{where[1]:>11}{missing}")
    lines += ["", "smoothness (start / middle / end):"]
    for tag in SMOOTH_TAGS.values():
        series = scalars.get(tag, [])
        if series:
            picks = [series[0][1], series[len(series) // 2][1], series[-1][1]]
            lines.append(f"  {tag:26} " + "  ".join(f"{v:9.4g}" for v in picks))
    lines += ["", "guard:"]
    report_path = run_dir / DIVERGENCE
    if report_path.is_file():
        for event in json.loads(report_path.read_text())["events"]:
            lines.append(f"  step {event['global_step']:,}: {event['quantity']} = "
                         f"{event['value']}: {event['action']}")
    else:
        lines.append(f"  no action (no {DIVERGENCE})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m rlcl.diagnose RUN_DIR", file=sys.stderr)
        return 2
    try:
        print(report(Path(argv[0])))
    except RlclError as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
