"""The side outputs every step shares: the tag names, and the one way a DoFn emits its dead letters."""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

import apache_beam as beam

from transforms.core import deadletter

DEAD_LETTERS = 'dead_letters'
STATS = 'stats'
# Dead letters logged per call: enough to see what went wrong; the rest are in the dead_letters table.
LOGGED = 3


def tag_dead_letters(rows: Iterable[dict], log: logging.Logger) -> Iterator[beam.pvalue.TaggedOutput]:
    """dead-letter rows -> TaggedOutput(DEAD_LETTERS, row) each, the first ``LOGGED`` of them logged on ``log``
    (WARNING, one line each: ``deadletter.describe``). Use as ``yield from tag_dead_letters(bad, log)``."""
    for i, row in enumerate(rows):
        if i < LOGGED:
            log.warning('dead letter: %s', deadletter.describe(row))
        yield beam.pvalue.TaggedOutput(DEAD_LETTERS, row)
