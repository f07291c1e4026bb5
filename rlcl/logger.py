"""The only module that imports tensorboardX; it also owns console output and the progress bar.

A run folder holds the TensorBoard events (flushed at least every 10 s so a live run shows),
the hyperparameters as a text table, ``episodes.csv`` and whatever train.py writes beside them.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path

from tensorboardX import SummaryWriter
from tensorboardX.summary import hparams as hparams_summaries

from rlcl.diagnostics import LAYOUT

# diag/* values are non-finite on purpose while a run diverges: no warning for each one
logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)

FLUSH_SECS = 10
PLAIN_EVERY_SECS = 10.0  # off a terminal, one status line this often


class RunLogger:
    def __init__(self, run_dir: Path, hparams: dict, total_steps: int, progress: bool):
        self.run_dir = run_dir
        self.writer = SummaryWriter(str(run_dir), flush_secs=FLUSH_SECS)
        rows = "\n".join(f"|{k}|{v}|" for k, v in hparams.items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
        self.writer.add_custom_scalars(LAYOUT)
        self._episodes_file = open(run_dir / "episodes.csv", "w", newline="")
        self._episodes = csv.writer(self._episodes_file)
        self._episodes.writerow(["global_step", "time_s", "return", "length"])
        self.start = time.perf_counter()
        self.total = total_steps
        self.tty = progress and sys.stderr.isatty()
        self._last_plain = self.start

    def episode(self, global_step: int, ret: float, length: int) -> None:
        elapsed = time.perf_counter() - self.start
        self._episodes.writerow([global_step, f"{elapsed:.3f}", repr(ret), length])

    def scalars(self, values: dict, step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def progress(self, step: int, sps: float, recent_return: float | None) -> None:
        ret = "   n/a" if recent_return is None else f"{recent_return:6.1f}"
        now = time.perf_counter()
        if self.tty:
            width = 24
            filled = int(width * step / max(1, self.total))
            bar = "#" * filled + "." * (width - filled)
            sys.stderr.write(f"\r[{bar}] {step:>9,}/{self.total:,} steps | {sps:7,.0f} SPS | "
                             f"return {ret}")
            sys.stderr.flush()
        elif now - self._last_plain >= PLAIN_EVERY_SECS or step >= self.total:
            self._last_plain = now
            print(f"step {step:,}/{self.total:,}  {sps:,.0f} SPS  return {ret}",
                  file=sys.stderr, flush=True)

    def end_progress(self) -> None:
        if self.tty:
            sys.stderr.write("\n")

    def hparams(self, hparams: dict, metrics: dict) -> None:
        """The run's hyperparameters and final figures in TensorBoard's HParams view.

        Written through the run's own writer: SummaryWriter.add_hparams opens a second writer,
        whose events file collides with the first one's name when both open in the same second.
        """
        flat = {k: (str(v) if isinstance(v, (list, tuple)) else v) for k, v in hparams.items()}
        for summary in hparams_summaries(flat, metrics):
            self.writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, 0)

    def close(self) -> None:
        self._episodes_file.close()
        self.writer.close()
