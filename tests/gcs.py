"""A local GCS emulator for tests: real gs:// I/O through the ordinary clients, on loopback only.

google-cloud-storage (and so Beam's GcsIO) talk to it when STORAGE_EMULATOR_HOST is set. Credentials come
from a standard Application Default Credentials file holding a non-expiring dummy token, so nothing tries
to reach Google's token endpoint or the GCE metadata server (which would cost ~20 s of retries).
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _start_emulator() -> tuple[subprocess.Popen, int]:
    """The emulator on a free loopback port, retried on another port if one is taken in between."""
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).with_name('gcs_emulator_main.py')),
                                 'start', '--host=127.0.0.1', f'--port={port}', '--in-memory'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                    return proc, port
            except OSError:
                time.sleep(0.1)
        proc.kill()
        proc.wait(timeout=10)
    raise RuntimeError('the GCS emulator did not start')


@contextlib.contextmanager
def gcs_emulator(workdir: pathlib.Path):
    """Starts the emulator and points this process (and its children) at it; yields a storage Client."""
    proc, port = _start_emulator()
    creds = workdir / 'adc.json'
    creds.write_text(json.dumps({'type': 'authorized_user', 'client_id': 'local', 'client_secret': 'local',
                                 'refresh_token': 'local', 'token': 'local', 'expiry': '2999-01-01T00:00:00Z'}))
    saved = {k: os.environ.get(k) for k in ('STORAGE_EMULATOR_HOST', 'GOOGLE_APPLICATION_CREDENTIALS',
                                            'GOOGLE_CLOUD_PROJECT')}
    os.environ.update(STORAGE_EMULATOR_HOST=f'http://127.0.0.1:{port}', GOOGLE_APPLICATION_CREDENTIALS=str(creds),
                      GOOGLE_CLOUD_PROJECT='local-test')
    try:
        from google.cloud import storage
        yield storage.Client(project='local-test')
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def upload_tree(client, bucket: str, local: pathlib.Path, prefix: str) -> str:
    b = client.bucket(bucket)
    for p in sorted(local.rglob('*')):
        if p.is_file():
            b.blob(f'{prefix}/{p.relative_to(local).as_posix()}').upload_from_filename(str(p))
    return f'gs://{bucket}/{prefix}'
