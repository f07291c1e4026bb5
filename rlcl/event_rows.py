"""An iteration's scalars as one TensorBoard event record, serialised without protobuf messages
(rlcl/logger.py writes them; tensorboardX writes every other event).

A population logs every agent's ~35 scalars every iteration (issue 13). Through protobuf and
tensorboardX's EventsWriter that cost ~15 us an agent: a Python assignment per value, then the
writer's lock, counters and four writes. Here the summary of a fixed set of tags is a
precomputed ``struct`` layout whose only variables are the float32 values, and the event and
its TFRecord framing (uint64 length, masked CRC-32C of it, the payload, its masked CRC-32C) are
a few byte strings joined once. The bytes parse as the protobuf event (tests/test_resume.py).

Wire format (tensorboard's event.proto): Event{wall_time = 1 (double), step = 2 (int64),
summary = 5}; Summary{value = 1 (repeated)}; Value{tag = 1 (string), simple_value = 2 (float)}.
"""

from __future__ import annotations

import struct

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


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    x = crc32c(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class ScalarRow:
    """Events of TAGS' values: ``record(values, wall_time, step)`` is the framed record."""

    def __init__(self, tags: tuple[str, ...]):
        chunks = []  # before each value: its Value's key and length, its tag's, the float key
        for tag in tags:
            name = tag.encode()
            value = b"\x0a" + varint(len(name)) + name + b"\x15"
            chunks.append(b"\x0a" + varint(len(value) + 4) + value)
        self.layout = struct.Struct("<" + "".join(f"{len(c)}sf" for c in chunks))
        self.args: list = [None] * (2 * len(chunks))
        self.args[0::2] = chunks
        self.summary_key = _SUMMARY + varint(self.layout.size)

    def record(self, values, wall_time: float, step: int) -> bytes:
        """The record; OverflowError where a finite value exceeds float32 (protobuf's float
        field stores it as an infinity: the caller takes that path)."""
        self.args[1::2] = values
        event = b"".join((_WALL_TIME, _DOUBLE.pack(wall_time), _STEP, varint(step),
                          self.summary_key, self.layout.pack(*self.args)))
        length = _LENGTH.pack(len(event))
        return b"".join((length, _CRC.pack(masked_crc(length)), event,
                         _CRC.pack(masked_crc(event))))
