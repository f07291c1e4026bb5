"""The only module that imports tensorboardX, so the only one that writes or reads the event
format (``read_scalars``); it also owns console output and the progress bar.

A run folder holds the TensorBoard events (flushed at least every 10 s so a live run shows),
the hyperparameters as a text table, ``episodes.csv`` and whatever train.py writes beside them.

Events are written synchronously with tensorboardX's EventsWriter and its summary builders
(an iteration's scalars as records rlcl/event_rows.py serialises, the same bytes), not through
SummaryWriter: SummaryWriter queues events to a background thread and its flush()
does not drain that queue, so a checkpoint could not promise that everything logged before
it is on disk (issue 5: a resumed run must hold every step exactly once).
"""

from __future__ import annotations

import csv
import logging
import os
import struct
import sys
import time
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2, summary_pb2
from tensorboardX.summary import custom_scalars, scalar, text
from tensorboardX.summary import hparams as hparams_summaries

from rlcl.checkpoint import EPISODES
from rlcl.diagnostics import LAYOUT
from rlcl.event_rows import ScalarRow

# diag/* values are non-finite on purpose while a run diverges: no warning for each one
logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)

FLUSH_SECS = 10
EPISODE_HEADER = ["global_step", "time_s", "return", "length"]
PLAIN_EVERY_SECS = 10.0  # off a terminal, one status line this often
REDRAW_SECS = 0.1  # on one, the bar's redraws at most this often


class RunLogger:
    """Writes one run folder. With RESUME_STEP (a resume from a checkpoint taken at that global
    step), what the killed process logged after that step is dropped first, from episodes.csv
    and from the events files, so every episode and step appears exactly once."""

    def __init__(self, run_dir: Path, hparams: dict, total_steps: int, progress: bool,
                 resume_step: int | None = None, elapsed: float = 0.0):
        self.run_dir = run_dir
        if resume_step is None:
            self._events = EventsWriter(str(run_dir / "events"))
            rows = "\n".join(f"|{k}|{v}|" for k, v in hparams.items())
            self._write(text("hyperparameters", f"|param|value|\n|-|-|\n{rows}"), 0)
            self._write(custom_scalars(LAYOUT), 0)
            self._episodes_file = open(run_dir / EPISODES, "w", newline="")
            self._episodes = csv.writer(self._episodes_file)
            self._episodes.writerow(EPISODE_HEADER)
        else:
            truncate_events(run_dir, resume_step)
            self._events = EventsWriter(str(run_dir / "events"), f".resumed_at_{resume_step}")
            truncate_episodes(run_dir / EPISODES, resume_step)
            self._episodes_file = open(run_dir / EPISODES, "a", newline="")
            self._episodes = csv.writer(self._episodes_file)
        self._events_handle = _events_handle(self._events)
        self._last_flush = time.perf_counter()
        self._events_by_tags: dict[tuple, tuple] = {}  # _scalars_protobuf: (event, its slots)
        self.start = time.perf_counter() - elapsed
        self.bar = Progress(total_steps, progress)

    def _write(self, summary, step: int) -> None:
        self._events.write_event(event_pb2.Event(wall_time=time.time(), step=step,
                                                 summary=summary))

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def episode(self, global_step: int, ret: float, length: int) -> None:
        self._episodes.writerow([global_step, f"{self.elapsed():.3f}", repr(ret), length])

    def scalars(self, values: dict, step: int) -> None:
        """VALUES (tag -> number) as one event at STEP."""
        write_scalar_rows([(self, tuple(values), list(values.values()), step)])

    def _scalars_protobuf(self, tags: tuple, values: list, step: int) -> None:
        """``scalars`` through protobuf and tensorboardX's writer, where the events file's
        handle is unknown (``_events_handle``) or the step is negative: the event is kept per
        set of tags, with its value slots, and only its step, time and values overwritten
        (building 30 values anew cost ~60 us, issue 13)."""
        entry = self._events_by_tags.get(tags)
        if entry is None:
            event = event_pb2.Event(summary=summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=tag) for tag in tags]))
            entry = self._events_by_tags[tags] = (event, list(event.summary.value))
        event, slots = entry
        for slot, value in zip(slots, values):
            slot.simple_value = value
        event.wall_time, event.step = time.time(), step
        self._events.write_event(event)

    def _flush_due(self) -> None:
        if time.perf_counter() - self._last_flush >= FLUSH_SECS:
            self._flush_events()  # a live run shows up in TensorBoard
            self._last_flush = time.perf_counter()

    def flush(self) -> None:
        """Everything logged so far on disk: called before a checkpoint is written, so a kill
        after it loses nothing the resume will not redo."""
        self.flush_buffers()
        self.sync()

    def flush_buffers(self) -> None:
        """Everything logged so far handed to the OS; ``sync`` then makes it durable (a
        population's checkpoint does that in the background: checkpoint.SyncBatch)."""
        self._flush_events()
        self._episodes_file.flush()

    def sync(self) -> None:
        os.fsync(self._episodes_file.fileno())
        if self._events_handle is not None:
            os.fsync(self._events_handle.fileno())

    def _flush_events(self) -> None:
        """The events written so far handed to the OS, without the fsync of tensorboardX's
        EventsWriter.flush: a reader sees them at once, and ``sync`` makes them durable (in a
        population's background commit: 64 agents' fsyncs in the training thread cost ~10 ms a
        checkpoint on an SSD, far more on a slow disk)."""
        if self._events_handle is None:
            self._events.flush()
        else:
            self._events_handle.flush()

    def progress(self, step: int, sps: float, recent_return: float | None) -> None:
        self.bar.show(step, sps, recent_return)

    def end_progress(self) -> None:
        self.bar.end()

    def hparams(self, hparams: dict, metrics: dict) -> None:
        """The run's hyperparameters and final figures in TensorBoard's HParams view."""
        flat = {k: (str(v) if isinstance(v, (list, tuple)) else v) for k, v in hparams.items()}
        for summary in hparams_summaries(flat, metrics):
            self._write(summary, 0)
        for tag, value in metrics.items():
            self._write(scalar(tag, value), 0)

    def close(self) -> None:
        self._episodes_file.close()
        self._events.flush()
        self._events.close()


_ROWS: dict[tuple, ScalarRow] = {}  # write_scalar_rows: each set of tags' record layout


def write_scalar_rows(entries: list[tuple["RunLogger", tuple, list, int]]) -> None:
    """Each (logger, tags, values, step) of ENTRIES as one event in that logger's events file.
    One event holds all of an iteration's values (TensorBoard reads them like separate ones):
    tensorboardX checksums every event in pure Python, and one event per value cost 15 % of a
    default CartPole run (issue 6). The records are serialised directly (event_rows.ScalarRow:
    the bytes protobuf and tensorboardX's writer give), those of one set of tags and one step
    together: a population's agents log the same tags at the same step every iteration, and
    one event each through protobuf cost ~15 us an agent (issue 13)."""
    groups: dict[tuple, list] = {}  # (tags, step) -> [(logger, values)]
    for log, tags, values, step in entries:
        if log._events_handle is None or step < 0:
            log._scalars_protobuf(tags, values, step)
        else:
            groups.setdefault((tags, step), []).append((log, values))
    now = time.time()
    for (tags, step), group in groups.items():
        row = _ROWS.get(tags) or _ROWS.setdefault(tags, ScalarRow(tags))
        records = row.records([values for _, values in group], now, step)
        for (log, _), record in zip(group, records):
            log._events_handle.write(record)
    for log, *_ in entries:
        log._flush_due()


def _events_handle(events: EventsWriter):
    """EVENTS' open file, whose buffer RunLogger hands to the OS without an fsync; None (then
    EventsWriter.flush, fsync included) where a tensorboardX version keeps it elsewhere than
    2.6's RecordWriter._writer."""
    handle = getattr(getattr(events, "_py_recordio_writer", None), "_writer", None)
    return handle if callable(getattr(handle, "fileno", None)) else None


class Progress:
    """The progress bar on a terminal (PROGRESS and a tty), redrawn at most every 0.1 s as
    tqdm's is, else a plain line every 10 s; both at the end. A population's shows its
    aggregate steps/s and median recent return."""

    def __init__(self, total_steps: int, progress: bool, label: str = "return"):
        self.total, self.label = total_steps, label
        self.tty = progress and sys.stderr.isatty()
        self._last = time.perf_counter()

    def due(self, step: int) -> bool:
        """Whether ``show`` at STEP draws, for callers whose figures cost something to make (a
        population's median over its agents, every iteration, was ~4 % of its training)."""
        every = REDRAW_SECS if self.tty else PLAIN_EVERY_SECS
        return step >= self.total or time.perf_counter() - self._last >= every

    def show(self, step: int, sps: float, recent_return: float | None) -> None:
        if not self.due(step):
            return
        self._last = time.perf_counter()
        ret = "   n/a" if recent_return is None else f"{recent_return:6.1f}"
        if self.tty:
            width = 24
            filled = int(width * step / max(1, self.total))
            bar = "#" * filled + "." * (width - filled)
            sys.stderr.write(f"\r[{bar}] {step:>9,}/{self.total:,} steps | {sps:7,.0f} SPS | "
                             f"{self.label} {ret}")
            sys.stderr.flush()
        else:
            print(f"step {step:,}/{self.total:,}  {sps:,.0f} SPS  {self.label} {ret}",
                  file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def read_episodes(path: Path) -> list[tuple[int, float, int]]:
    """(global_step, return, length) rows of an episodes.csv."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [(int(r[0]), float(r[2]), int(r[3])) for r in rows if len(r) == 4]


def truncate_episodes(path: Path, step: int) -> None:
    """Keep the rows up to global step STEP (a killed process may have left later ones, or a
    half-written last line), atomically."""
    with open(path, newline="") as fh:
        rows = [r for r in list(csv.reader(fh))[1:] if len(r) == 4 and int(r[0]) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([EPISODE_HEADER, *rows])
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def event_records(data: bytes):
    """TFRecord framing: uint64 length, its CRC, the payload, the payload's CRC. A record cut
    short by a kill ends the file."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        if pos + 16 + length > len(data):
            return
        yield data[pos : pos + 16 + length], data[pos + 12 : pos + 12 + length]
        pos += 16 + length


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from every events file in RUN_DIR, oldest file first (what
    ``python -m rlcl.diagnose`` and the tests read; this module owns the event format)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        for _, payload in event_records(path.read_bytes()):
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def truncate_events(run_dir: Path, step: int) -> None:
    """Rewrite each events file without the events logged after global step STEP."""
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        kept = [raw for raw, payload in event_records(path.read_bytes())
                if event_pb2.Event.FromString(payload).step <= step]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)


# what collects the rollout: once per env step on the host path, once per iteration on the device
ROLLOUT_KERNELS = ("policy_act", "policy_act_gaussian", "rollout_classic", "rollout_classic_reset")


def format_profile(wall: float, env_s: float, readback_s: float, kernels: dict) -> str:
    """Where the training time went (--profile / RLCL_PROFILE=1). Kernel times are device
    times from OpenCL events; on a CPU device they overlap the host's own work only while
    the host runs ahead of the queue, so "host and Python" is what remains of the wall time."""
    device_s = sum(seconds for _, seconds in kernels.values())
    rows = [f"profile: {wall:.2f} s of training",
            f"  env stepping (host)          {env_s:8.3f} s  {100 * env_s / wall:5.1f} %",
            f"  action readbacks (blocking)  {readback_s:8.3f} s  {100 * readback_s / wall:5.1f} %"
            "  (waits for policy_act too)",
            f"  kernels (device time)        {device_s:8.3f} s  {100 * device_s / wall:5.1f} %"]
    groups = {"rollout (acting)": {k: v for k, v in kernels.items() if k in ROLLOUT_KERNELS},
              "update (and advantages)": {k: v for k, v in kernels.items()
                                          if k not in ROLLOUT_KERNELS}}
    for group, members in groups.items():
        group_s = sum(seconds for _, seconds in members.values())
        rows.append(f"    {group + ':':28s} {group_s:8.3f} s  {100 * group_s / wall:5.1f} %")
        for name, (count, seconds) in sorted(members.items(), key=lambda kv: -kv[1][1]):
            rows.append(f"      {name:26s} {seconds:8.3f} s  {count:8d} launches  "
                        f"{1e6 * seconds / max(count, 1):8.1f} us each")
    rest = wall - env_s - device_s
    rows.append(f"  host, Python and launches    {rest:8.3f} s  {100 * rest / wall:5.1f} %")
    return "\n".join(rows)
