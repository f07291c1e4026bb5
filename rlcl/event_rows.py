"""Iterations' scalars as TensorBoard event records, serialised without protobuf messages
(rlcl/logger.py writes them; tensorboardX writes every other event).

A population logs every agent's ~35 scalars every iteration (issue 13). Through protobuf and
tensorboardX's EventsWriter that cost ~15 us an agent: a Python assignment per value, then the
writer's lock, counters and four writes. Here the summary of a fixed set of tags is a
precomputed row of bytes whose only variables are the float32 values, written for all of a
step's events at once through a numpy view, and each event and its TFRecord framing (uint64
length, masked CRC-32C of it, the payload, its masked CRC-32C) are a few byte strings joined
once. The bytes are protobuf's (tests/test_resume.py).

Wire format (tensorboard's event.proto): Event{wall_time = 1 (double), step = 2 (int64),
summary = 5}; Summary{value = 1 (repeated)}; Value{tag = 1 (string), simple_value = 2 (float)}.
"""

from __future__ import annotations

import struct

import numpy as np
from crc32c import crc32c

_WALL_TIME, _STEP, _SUMMARY = b"\x09", b"\x10", b"\x2a"  # (field << 3) | wire type
_DOUBLE = struct.Struct("<d")
_LENGTH, _CRC = struct.Struct("<Q"), struct.Struct("<I")


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative N."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def step_field(step: int) -> bytes:
    """The event's step field: absent at 0, proto3's default, as protobuf leaves it out."""
    return _STEP + varint(step) if step else b""


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    x = crc32c(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class ScalarRow:
    """Events of TAGS' values: ``records(values, wall_time, step)`` frames them."""

    def __init__(self, tags: tuple[str, ...]):
        chunks = []  # before each value: its Value's key and length, its tag's, the float key
        for tag in tags:
            name = tag.encode()
            value = b"\x0a" + varint(len(name)) + name + b"\x15"
            chunks.append(b"\x0a" + varint(len(value) + 4) + value)
        # the summary as a row of bytes, the values' float32 slots at fixed offsets in it,
        # written through a structured view
        self.template = np.frombuffer(b"".join(c + bytes(4) for c in chunks), np.uint8)
        self.size = self.template.size
        self.summary_key = _SUMMARY + varint(self.size)
        offsets = np.cumsum([len(c) + 4 for c in chunks]) - 4
        self.slots = np.dtype({"names": [f"v{i}" for i in range(len(chunks))],
                               "formats": ["<f4"] * len(chunks),
                               "offsets": offsets.tolist(), "itemsize": self.size})

    def records(self, values: np.ndarray, wall_time: float, step: int) -> list[bytes]:
        """The records of len(VALUES) events at one step (a population's agents, issue 13):
        VALUES a row of numbers per event, each stored as protobuf stores a float field (the
        nearest float32; an infinity past its range), with one numpy assignment per tag for
        all events (a Python pack per event was most of their cost)."""
        rows = np.tile(self.template, (len(values), 1))
        view = rows.view(self.slots).reshape(-1)
        with np.errstate(over="ignore"):  # past float32: an infinity, as protobuf stores it
            cast = np.asarray(values, np.float64).astype(np.float32)
        for i, name in enumerate(self.slots.names):
            view[name] = cast[:, i]
        head = b"".join((_WALL_TIME, _DOUBLE.pack(wall_time), step_field(step),
                         self.summary_key))
        length = _LENGTH.pack(len(head) + self.size)
        framing = length + _CRC.pack(masked_crc(length))
        body, size, out = rows.tobytes(), self.size, []
        for at in range(0, len(body), size):
            event = head + body[at:at + size]
            out.append(b"".join((framing, event, _CRC.pack(masked_crc(event)))))
        return out
