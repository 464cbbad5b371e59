"""Coders for the large batch elements that flow between the build's transforms."""
from __future__ import annotations

import pickle

import apache_beam as beam


class BatchCoder(beam.coders.Coder):
    """Pickles a batch (protocol 5), but estimates its size from its ``nbytes`` without encoding it.

    Beam samples element sizes for its counters by encoding elements; for a batch of 100 MB that costs
    more than the work done on it (and doubles its memory for a moment).
    """

    def encode(self, value) -> bytes:
        return pickle.dumps(value, protocol=5)

    def decode(self, encoded: bytes):
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value) -> int:
        return int(value.nbytes)
