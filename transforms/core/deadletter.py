"""Dead-letter rows: every rejected input becomes one row of the ``dead_letters`` table."""
from __future__ import annotations

import enum

from audioset_beam.schema import DEAD_LETTERS

_FIELDS = tuple(DEAD_LETTERS.names)


class Stage(str, enum.Enum):
    """Where an input was rejected, in pipeline order; the value is the dead_letters table's ``stage``."""
    READ_SHARD = 'read-shard'
    PARSE_RECORD = 'parse-record'
    LABEL_RECORD = 'label-record'
    PARSE_CSV = 'parse-csv'
    PARSE_STRONG = 'parse-strong'
    JOIN_STRONG = 'join-strong'
    DISCOVER_AUDIO = 'discover-audio'
    EMBED_AUDIO = 'embed-audio'
    LABEL_AUDIO = 'label-audio'
    CHECK_SEGMENTS = 'check-segments'


# The values of the stages whose dead letters are records of the shards (counted per split, in records) and
# of those whose dead letters are audio files (counted once each). Values, not members: a row holds the
# plain string, and a str Enum member hashes by its name.
RECORD_STAGES = frozenset(s.value for s in (Stage.READ_SHARD, Stage.PARSE_RECORD, Stage.LABEL_RECORD,
                                            Stage.CHECK_SEGMENTS))
AUDIO_STAGES = frozenset(s.value for s in (Stage.DISCOVER_AUDIO, Stage.EMBED_AUDIO, Stage.LABEL_AUDIO))


def dead_letter(stage: Stage, reason: str, source: str, error: str, **fields) -> dict:
    """One dead-letter row; ``fields`` may set record_index, byte_offset, line_number, split, video_id...
    ``stage`` is stored as its plain string value (the table's column, and what pickles between workers)."""
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise TypeError(f'unknown dead-letter fields {sorted(unknown)}')
    row = dict.fromkeys(_FIELDS)
    row.update(records=1, records_estimated=False)
    row.update(fields, stage=Stage(stage).value, reason=reason, source=source, error=error)
    return row


def describe(row: dict) -> str:
    """One line naming the input and record, for logs and error messages."""
    where = row['source']
    if row.get('line_number') is not None:
        where += f':{row["line_number"]}'
    if row.get('record_index') is not None:
        where += f' record {row["record_index"]}'
    if row.get('byte_offset') is not None:
        where += f' @byte {row["byte_offset"]}'
    hidden = ''
    if row.get('records') not in (None, 1):
        hidden = f' ({"~" if row.get("records_estimated") else ""}{row["records"]} records)'
    return f'{where}: {row["stage"]}/{row["reason"]}{hidden}: {row["error"]}'
