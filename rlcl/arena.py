"""One buffer per kind for all agents of a population, so one launch can run them all (issue 13).

A population's agents have identical shapes, so building each makes the same sequence of
device allocations. While agent k is built inside ``arena.building(k)``, the i-th allocation
is not a buffer of its own but a slice (an OpenCL sub-buffer) of the arena's i-th buffer,
which holds every agent's copy at a fixed stride: agent k's at ``k * stride`` bytes, the
stride being the size rounded up to the device's base alignment. Everything built on the
agent (its Run, its kernels, checkpoints, the guard) uses its slices as it would its own
buffers, and a population kernel (``*_pop``) takes the whole buffers, the strides and the
agents' scalar table (kernel_constants.AGENT_COLUMNS) and finds each agent's slice itself.

State made later (the optimizer's lazily created velocity, buffers a resume or a rollback
replaces) is not in a slice: :meth:`pin` copies it into one and points the state there.
"""

from __future__ import annotations

import numpy as np

from rlcl.kernel_constants import AGENT_COLUMNS, AGENT_FLOATS


class Arena:
    def __init__(self, device, agents: int):
        self.device, self.agents = device, agents
        self.parents: list[tuple[object, int, int]] = []  # (buffer, stride bytes, nbytes)
        self.home: dict[int, tuple[int, int]] = {}  # id(slice) -> (parent index, agent)
        self.slices: list = []  # kept alive, so their ids stay theirs
        self.agent, self.next = -1, 0
        self.built = False  # True once the first agent is built: the buffers are all made

    # -- building agents -------------------------------------------------------------------
    def building(self, agent: int) -> "Arena":
        self.agent, self.next = agent, 0
        return self

    def __enter__(self):
        self.device.arena = self
        return self

    def __exit__(self, *exc) -> None:
        self.device.arena = None
        if exc[0] is None and self.built and self.next != len(self.parents):
            raise RuntimeError("the agents of a population made different allocations")
        self.built = self.built or exc[0] is None

    def take(self, nbytes: int):
        """The building agent's slice of the next buffer (made by agent 0's request)."""
        i, k = self.next, self.agent
        self.next += 1
        if i == len(self.parents) and not self.built:  # the first agent built makes them
            align = self.device.base_align
            stride = -(-nbytes // align) * align
            self.device.arena = None  # the whole buffer is a buffer of its own
            whole = self.device.zeros(stride * self.agents // 4)
            self.device.arena = self
            self.parents.append((whole, stride, nbytes))
        elif i >= len(self.parents) or self.parents[i][2] != nbytes:
            raise RuntimeError("the agents of a population made different allocations")
        parent, stride, _ = self.parents[i]
        piece = self.device.sub_buffer(parent, k * stride, nbytes)
        self.home[id(piece)] = (i, k)
        self.slices.append(piece)
        return piece

    def whole(self, piece) -> tuple[object, int]:
        """(the arena buffer, the stride in 32-bit words) of a slice."""
        parent, stride, _ = self.parents[self.home[id(piece)][0]]
        return parent, stride // 4

    def holds(self, piece, agent: int) -> bool:
        return self.home.get(id(piece), (None, None))[1] == agent

    def regions(self) -> dict:
        """id(slice) -> (its whole buffer, byte offset, bytes), for ReadThrough."""
        return {key: (self.parents[i][0], k * self.parents[i][1], self.parents[i][2])
                for key, (i, k) in self.home.items()}

    def strides(self, pieces) -> tuple[list, np.ndarray]:
        """The whole buffers of agent 0's PIECES and their strides, for a *_pop launch."""
        wholes = [self.whole(p) for p in pieces]
        return [w for w, _ in wholes], np.array([s for _, s in wholes], np.int32)


class Pinned:
    """Buffers made after the agents were built (optimizer state, the guard's snapshots), one
    region per agent in one buffer (STRIDE words apart: by default COUNT rounded up to the
    device's alignment), and the copies that keep each agent's state there."""

    def __init__(self, device, agents: int, count: int, stride: int | None = None):
        self.device, self.count = device, count
        align = device.base_align // 4
        self.stride = stride or -(-count // align) * align
        self.whole = device.zeros(self.stride * agents)
        self.pieces = [device.sub_buffer(self.whole, 4 * k * self.stride, 4 * count)
                       for k in range(agents)]

    def regions(self) -> dict:
        """id(piece) -> (the whole buffer, byte offset, bytes), for ReadThrough."""
        return {id(piece): (self.whole, 4 * k * self.stride, 4 * self.count)
                for k, piece in enumerate(self.pieces)}

    def pin(self, state: dict, key: str, agent: int) -> None:
        """Move STATE[KEY] (a buffer of COUNT floats) into AGENT's region, if not there."""
        piece = self.pieces[agent]
        if key in state and state[key] is not piece:
            self.device.copy(piece, state[key], self.count)
            state[key] = piece


class ReadThrough:
    """Device.read of an agent's slice (REGIONS: id(slice) -> (whole buffer, byte offset,
    bytes)) served from one blocking read of its whole buffer, made at the first read of any
    agent's slice of it and kept: for reads of many agents' state where nothing writes the
    buffers meanwhile (a population's checkpoints: rlcl/batched.py)."""

    def __init__(self, device, regions: dict):
        self.device, self.regions = device, regions
        self.fetched: dict[int, np.ndarray] = {}  # id(whole) -> its bytes

    def get(self, buffer) -> np.ndarray | None:
        """BUFFER's bytes, or None if it is not a slice in the regions."""
        region = self.regions.get(id(buffer))
        if region is None:
            return None
        whole, offset, nbytes = region
        host = self.fetched.get(id(whole))
        if host is None:
            host = self.fetched[id(whole)] = self.device.read_bytes(whole)
        return host[offset:offset + nbytes]


_FLOATS = np.array([c in AGENT_FLOATS for c in AGENT_COLUMNS])


def agent_words(rows: list[dict]) -> np.ndarray:
    """The *_pop kernels' per-agent scalars (kernel_constants.AGENT_COLUMNS): ROWS (dicts of
    column values) as rows of 32-bit words, a float as its float32 bits (AGENT_FLOATS, round to
    nearest), an int as its 32-bit word, a column a row does not name 0."""
    values = np.array([[row.get(c, 0) for c in AGENT_COLUMNS] for row in rows], np.float64)
    words = np.empty(values.shape, np.uint32)
    words[:, _FLOATS] = values[:, _FLOATS].astype(np.float32).view(np.uint32)
    words[:, ~_FLOATS] = values[:, ~_FLOATS].astype(np.int64) & 0xFFFFFFFF
    return words
