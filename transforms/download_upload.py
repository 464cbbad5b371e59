"""The downloader's side of a bucket: read its inputs from gs://, publish clips and the ledger there.

Goes through ``google.cloud.storage`` (the normal client, so ``STORAGE_EMULATOR_HOST`` and Application
Default Credentials apply as usual). Clips are made in a local staging folder, as the ledger is: an
append-and-fsync log cannot live in an object store, so the bucket holds a copy of it, pushed as the
run goes and at its end, and merged back into the staging ledger when a run starts.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import threading
import time
import urllib.parse

from transforms.core.download import ledger

log = logging.getLogger(__name__)

_client = None
_client_lock = threading.Lock()


def is_remote(path: str) -> bool:
    return path.startswith('gs://')


def _split(uri: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != 'gs' or not parts.netloc:
        raise ValueError(f'{uri}: expected gs://bucket/path')
    return parts.netloc, parts.path.lstrip('/')


def client():
    """One storage client per process, made on first use."""
    global _client
    with _client_lock:
        if _client is None:
            from google.cloud import storage
            _client = storage.Client()
        return _client


def read_bytes(path: str) -> bytes:
    """A local file's or a gs:// object's bytes; FileNotFoundError when absent."""
    if not is_remote(path):
        return pathlib.Path(path).read_bytes()
    from google.api_core import exceptions
    bucket, name = _split(path)
    try:
        return client().bucket(bucket).blob(name).download_as_bytes()
    except exceptions.NotFound:
        raise FileNotFoundError(f'{path}: no such object') from None


def is_dir(path: str) -> bool:
    """A local folder, or a gs:// prefix with at least one object below it."""
    if not is_remote(path):
        return os.path.isdir(path)
    bucket, name = _split(path.rstrip('/') + '/')
    return any(True for _ in client().list_blobs(bucket, prefix=name, max_results=1))


def list_files(directory: str) -> list[str]:
    """Every file below ``directory`` (local or gs://), sorted; empty when there is none."""
    if not is_remote(directory):
        root = pathlib.Path(directory)
        return sorted(str(p) for p in root.rglob('*') if p.is_file()) if root.is_dir() else []
    bucket, prefix = _split(directory.rstrip('/') + '/')
    return sorted(f'gs://{bucket}/{b.name}' for b in client().list_blobs(bucket, prefix=prefix))


def default_staging_dir(audio_dir: str) -> str:
    """A per-destination folder under the user's cache, so reruns for one bucket find their ledger."""
    key = hashlib.sha256(audio_dir.rstrip('/').encode()).hexdigest()[:16]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'audioset-download', key)


class BucketPublisher:
    """``publish(local_path, name) -> gs://...``: uploads a finished clip, checks its size, deletes the
    local copy; pushes the staging ledger to the bucket at most every ``sync_every_s`` seconds."""

    def __init__(self, audio_dir: str, staging_dir: str, sync_every_s: float = 60.0):
        self.audio_dir = audio_dir.rstrip('/')
        self.bucket, self.prefix = _split(self.audio_dir + '/')
        self.staging_dir = staging_dir
        self.sync_every_s = sync_every_s
        self._last_sync = time.monotonic()
        self._lock = threading.Lock()

    @property
    def ledger_uri(self) -> str:
        return f'{self.audio_dir}/{ledger.FILE_NAME}'

    @property
    def local_ledger(self) -> str:
        return os.path.join(self.staging_dir, ledger.FILE_NAME)

    def pull_ledger(self) -> None:
        """Merges the bucket's ledger into the staging one (call before the run opens it)."""
        try:
            remote = read_bytes(self.ledger_uri)
        except FileNotFoundError:
            return
        os.makedirs(self.staging_dir, exist_ok=True)
        local = pathlib.Path(self.local_ledger)
        merged = ledger.merge(remote, local.read_bytes() if local.exists() else b'')
        tmp = local.with_name(local.name + '.merge')
        tmp.write_bytes(merged)
        os.replace(tmp, local)

    def push_ledger(self) -> None:
        """Uploads the complete lines of the staging ledger (an object is replaced atomically)."""
        data = pathlib.Path(self.local_ledger).read_bytes() if os.path.exists(self.local_ledger) else b''
        data = data[:data.rfind(b'\n') + 1]
        client().bucket(self.bucket).blob(self.prefix + ledger.FILE_NAME).upload_from_string(
            data, content_type='application/x-ndjson')
        self._last_sync = time.monotonic()

    def __call__(self, local_path: str, name: str) -> str:
        blob = client().bucket(self.bucket).blob(self.prefix + name)
        size = os.path.getsize(local_path)
        blob.upload_from_filename(local_path, content_type='audio/flac')
        blob.reload()
        if blob.size != size:
            raise OSError(f'gs://{self.bucket}/{blob.name}: uploaded {blob.size} bytes, expected {size}')
        os.remove(local_path)
        with self._lock:
            if time.monotonic() - self._last_sync >= self.sync_every_s:
                self.push_ledger()
        return f'gs://{self.bucket}/{blob.name}'
