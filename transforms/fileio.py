"""Byte-level file access through Beam's FileSystems, so local paths and gs:// behave the same."""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
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


# Conditional writes, for what several runs may race on (a run's liveness marker, the latest.json pointer).
# Beam's FileSystems has no preconditions: gs:// goes through google.cloud.storage's generation numbers,
# local paths through hard links (exclusive create) and fsync'd renames.

_gcs_clients = {}  # STORAGE_EMULATOR_HOST (None: GCS itself) -> client


os.register_at_fork(after_in_child=_gcs_clients.clear)  # a client's connections must not cross a fork


def _gcs_blob(path: str):
    """The google.cloud.storage Blob for a gs:// path (one client per process and endpoint, made on first
    use; it honours STORAGE_EMULATOR_HOST and Application Default Credentials as usual)."""
    if not path.startswith('gs://') or '/' not in path[5:]:
        raise ValueError(f'{path}: expected gs://bucket/name')
    endpoint = os.environ.get('STORAGE_EMULATOR_HOST')
    if endpoint not in _gcs_clients:
        from google.cloud import storage
        _gcs_clients[endpoint] = storage.Client()
    bucket, name = path[5:].split('/', 1)
    return _gcs_clients[endpoint].bucket(bucket).blob(name)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: str, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tmp_name(path: str) -> str:
    return f'{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp'


def create_exclusive(path: str, data: bytes) -> bool:
    """Creates ``path`` holding ``data`` unless it exists; of several concurrent creators exactly one gets
    True. The file appears whole (locally it is written aside and hard-linked into place; on gs:// the
    upload carries the precondition "no live generation")."""
    if not is_local(path):
        from google.api_core import exceptions
        blob = _gcs_blob(path)
        try:
            blob.upload_from_string(data, content_type='application/json', if_generation_match=0)
            return True
        except exceptions.PreconditionFailed:
            # Lost the race, or a retried upload of ours found its own first attempt: tell by content.
            try:
                return blob.download_as_bytes() == data
            except exceptions.NotFound:
                return False
    directory = os.path.dirname(os.path.abspath(path))
    for _ in range(2):  # a concurrent prune may remove a fresh, still empty folder: make it again once
        os.makedirs(directory, exist_ok=True)
        tmp = _tmp_name(path)
        try:
            _write_synced(tmp, data)
            os.link(tmp, path)
        except FileExistsError:
            return False
        except FileNotFoundError:
            continue
        except OSError:  # no hard links on this filesystem: O_EXCL (a reader may see it half-written)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)
        return True
    raise FileNotFoundError(f'{directory} vanished twice while creating {path}')


def read_generation(path: str) -> tuple[bytes, int] | None:
    """(bytes, generation) of a gs:// object, read consistently; None when it does not exist."""
    from google.api_core import exceptions
    while True:
        blob = _gcs_blob(path)
        try:
            blob.reload()
            generation = blob.generation  # a download resets it from the response headers
            return blob.download_as_bytes(if_generation_match=generation), generation
        except exceptions.NotFound:
            return None
        except exceptions.PreconditionFailed:
            continue  # replaced between the two calls: read the new one


def write_if_generation(path: str, data: bytes, generation: int) -> bool:
    """Writes a gs:// object only if its generation is still ``generation`` (0: only if it does not exist);
    False when another writer came first."""
    from google.api_core import exceptions
    try:
        _gcs_blob(path).upload_from_string(data, content_type='application/json', if_generation_match=generation)
        return True
    except exceptions.PreconditionFailed:
        return False


def delete_if_generation(path: str, generation: int) -> bool:
    """Deletes a gs:// object only if its generation is still ``generation``."""
    from google.api_core import exceptions
    try:
        _gcs_blob(path).delete(if_generation_match=generation)
        return True
    except (exceptions.PreconditionFailed, exceptions.NotFound):
        return False


def replace_durably(path: str, data: bytes) -> None:
    """Local only: writes ``data`` aside, fsyncs it, renames it over ``path`` and fsyncs the folder, so that
    after a crash ``path`` holds the old or the new bytes, never neither."""
    tmp = _tmp_name(path)
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def local_lock(path: str):
    """An exclusive advisory lock (flock) on a local lock file, held for the ``with`` block."""
    import fcntl
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'a') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
