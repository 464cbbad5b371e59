"""Dead-letter rows: every rejected input becomes one row of the ``dead_letters`` table."""
from __future__ import annotations

from transforms.core.schema import DEAD_LETTERS

_FIELDS = tuple(DEAD_LETTERS.names)

# Stages, in pipeline order.
READ_SHARD = 'read-shard'
PARSE_RECORD = 'parse-record'
LABEL_RECORD = 'label-record'
PARSE_CSV = 'parse-csv'
DISCOVER_AUDIO = 'discover-audio'
EMBED_AUDIO = 'embed-audio'
LABEL_AUDIO = 'label-audio'
CHECK_SEGMENTS = 'check-segments'


def dead_letter(stage: str, reason: str, source: str, error: str, **fields) -> dict:
    """One dead-letter row; ``fields`` may set record_index, byte_offset, line_number, split, video_id..."""
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise TypeError(f'unknown dead-letter fields {sorted(unknown)}')
    row = dict.fromkeys(_FIELDS)
    row.update(records=1, records_estimated=False)
    row.update(fields, stage=stage, reason=reason, source=source, error=error)
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
