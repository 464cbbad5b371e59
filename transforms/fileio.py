"""Byte-level file access through Beam's FileSystems, so local paths and gs:// behave the same."""
from __future__ import annotations

import io
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_RAW = CompressionTypes.UNCOMPRESSED


def is_local(path: str) -> bool:
    return '://' not in path


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=_RAW) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=_RAW) as f:
        f.write(data)


def write_json_atomic(path: str, obj) -> None:
    """Writes JSON to a temporary name, then renames it over ``path``: readers see old or new, never half."""
    tmp = path + '.tmp'
    write_bytes(tmp, (json.dumps(obj, indent=2, sort_keys=True, default=str) + '\n').encode())
    if FileSystems.exists(path):
        if is_local(path):
            os.replace(tmp, path)
            return
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def list_files(directory: str) -> list[tuple[str, int]]:
    """(path, size) of every file below ``directory``, sorted; empty if it does not exist."""
    if is_local(directory) and not os.path.isdir(directory):
        return []
    pattern = directory.rstrip('/') + '/**'
    result = FileSystems.match([pattern])[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)


def delete_tree(directory: str) -> None:
    if is_local(directory):
        shutil.rmtree(directory, ignore_errors=True)
    else:
        delete([p for p, _ in list_files(directory)])


def write_parquet(path: str, table: pa.Table, **kwargs) -> int:
    """Writes a whole table as one zstd Parquet file; returns its row count."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression='zstd', **kwargs)
    write_bytes(path, buf.getvalue())
    return table.num_rows


def parquet_rows(path: str) -> int:
    """Row count from the Parquet footer (reads the footer only)."""
    if is_local(path):
        return pq.ParquetFile(path).metadata.num_rows
    with FileSystems.open(path, compression_type=_RAW) as f:
        return pq.ParquetFile(f).metadata.num_rows


def open_random_access(path: str):
    """A seekable Arrow input for ``path``. Local files are read, not memory-mapped: mapped pages of the
    spill files would count against the workers' resident memory."""
    if is_local(path):
        return pa.OSFile(path, 'r')
    return pa.PythonFile(FileSystems.open(path, compression_type=_RAW), mode='r')
