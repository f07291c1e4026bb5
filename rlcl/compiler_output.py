"""What PoCL's compiler prints, kept away from the terminal (issue 10: a user's first run shows
only rlcl's own lines), and the line of it worth a one-line error. No OpenCL here: rlcl/device.py
builds the programs inside captured_stderr()."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager


@contextmanager
def captured_stderr():
    """Send file descriptor 2 to a temporary file while PoCL compiles: its clang writes
    warnings such as "16 warnings generated." straight to the process's stderr, past Python's
    warning filters. Yields the file, so a failed build can still show what was printed.
    Anything another thread writes to stderr meanwhile is captured too (and dropped)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def first_error(log: str) -> str:
    """The first line of a compiler log that says "error", else its first non-empty line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no compiler output"])[0]
