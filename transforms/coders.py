"""Explicit coders for the large elements that flow between the build's transforms.

Beam picks a coder from an element's type; for a type it does not know (a dataclass holding numpy arrays or
an Arrow table) it falls back to FastPrimitivesCoder, which pickles the object with a type tag in front and
also encodes every sampled element just to estimate its size. With 100 MB batches that doubles memory for a
moment and costs more than the work done on them, and a stream decoded with a mismatched coder fails with
errors like ``Unknown type tag``. So every batch type registers a coder of its own: ``BatchCoder``
(pickle protocol 5, size from ``nbytes``) for numpy batches, ``TableBatchCoder`` (Arrow IPC) for Arrow
tables, and the largest things (shard data, the segment CSV index) never travel at all: they go through
files, and only their paths and small descriptors pass through the runner.
"""
from __future__ import annotations

import json
import pickle
import struct

import apache_beam as beam
import pyarrow as pa
import pyarrow.ipc as ipc


class BatchCoder(beam.coders.Coder):
    """Pickles a batch (protocol 5), but estimates its size from its ``nbytes`` without encoding it."""

    def encode(self, value) -> bytes:
        return pickle.dumps(value, protocol=5)

    def decode(self, encoded: bytes):
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value) -> int:
        return int(value.nbytes)


class TableBatchCoder(beam.coders.Coder):
    """A dataclass with plain JSON fields and one Arrow ``table`` field: a JSON header, then Arrow IPC.

    ``cls`` must accept its fields as keyword arguments and expose ``table`` and ``nbytes``.
    """

    def __init__(self, cls):
        self.cls = cls

    def encode(self, value) -> bytes:
        header = {k: v for k, v in vars(value).items() if k != 'table'}
        head = json.dumps(header).encode()
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, value.table.schema) as writer:
            writer.write_table(value.table)
        return struct.pack('<I', len(head)) + head + sink.getvalue().to_pybytes()

    def decode(self, encoded: bytes):
        (n,) = struct.unpack_from('<I', encoded)
        header = json.loads(encoded[4:4 + n])
        table = ipc.open_stream(pa.py_buffer(encoded)[4 + n:]).read_all()
        return self.cls(table=table, **header)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value) -> int:
        return int(value.nbytes)

    def __eq__(self, other):
        return type(self) is type(other) and self.cls is other.cls

    def __hash__(self):
        return hash((type(self), self.cls))
