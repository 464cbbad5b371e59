"""Clip file names: ``<YTID>_<start>_<end>.flac``, times in seconds with exactly three decimals.

The name carries the whole segment key, so a folder of clips can be joined to the segment CSVs (or to
AudioSet Strong's ``<YTID>_<start_ms>`` ids) without the ledger. YouTube ids may start with ``-`` and
contain ``_``, so a name is parsed from the right.
"""
from __future__ import annotations

import re
import typing

from audioset_beam import layout
from audioset_beam.layout import segment_id

EXTENSION = '.flac'
_YTID = re.compile(r'^[A-Za-z0-9_-]+$')


def format_seconds(milliseconds: int) -> str:
    """Integer milliseconds as the CSV writes seconds: ``30000 -> '30.000'``. No float is involved."""
    if milliseconds < 0:
        raise ValueError(f'negative time {milliseconds} ms')
    return f'{milliseconds // 1000}.{milliseconds % 1000:03d}'


def clip_name(ytid: str, start_ms: int, end_ms: int) -> str:
    """File name of a segment's clip.

    >>> clip_name('--4gqARaEJE', 30000, 40000)
    '--4gqARaEJE_30.000_40.000.flac'
    """
    if not _YTID.match(ytid):
        raise ValueError(f'bad YouTube id {ytid!r}')
    if not 0 <= start_ms < end_ms:
        raise ValueError(f'need 0 <= start < end, got {start_ms} ms, {end_ms} ms')
    return f'{ytid}_{format_seconds(start_ms)}_{format_seconds(end_ms)}{EXTENSION}'


class ClipName(typing.NamedTuple):
    """A parsed clip name; unpacks as ``(ytid, start, end)`` with times in seconds."""
    ytid: str
    start: float
    end: float

    @property
    def start_ms(self) -> int:
        return int(round(self.start * 1000))

    @property
    def end_ms(self) -> int:
        return int(round(self.end * 1000))

    @property
    def segment_id(self) -> str:
        """``<YTID>_<start_ms>``, the key of the ledger, ``missing_features`` and AudioSet Strong."""
        return segment_id(self.ytid, self.start_ms)


def parse_clip_name(name: str) -> ClipName:
    """``(ytid, start, end)`` from a clip's file name or path (the ``.flac`` suffix is optional).

    Splits on the last two underscores, because YouTube ids contain ``_`` and may start with ``-``.

    >>> parse_clip_name('gs://bucket/audio/-abc_def-12_30.000_40.000.flac')
    ClipName(ytid='-abc_def-12', start=30.0, end=40.0)

    Parsed as the build reads clip names (``layout.parse_clip_name``), then held to what :func:`clip_name`
    writes: raises ValueError for anything it would not have written.
    """
    base = name.rsplit('/', 1)[-1]
    stem = base[:-len(EXTENSION)] if base.endswith(EXTENSION) else base
    try:
        got = ClipName(*layout.parse_clip_name(stem))
        if clip_name(got.ytid, got.start_ms, got.end_ms) != stem + EXTENSION:
            raise ValueError(f'that segment is named {clip_name(got.ytid, got.start_ms, got.end_ms)}')
    except ValueError as e:
        raise ValueError(f'{name!r} is not a clip name <YTID>_<start>_<end>.flac (times like 30.000): {e}') \
            from None
    return got
