"""Fault injection into the seal: a file the run wrote goes missing or is cut short before the manifest.
The build must fail, write no manifest, and leave latest.json where it was."""
import json
import pathlib

import pytest

from pipelines import build_dataset
from tests.fixtures import copy_sample
from transforms import write


def _args(inputs: pathlib.Path, root: pathlib.Path) -> list[str]:
    return ['--features_dir', str(inputs / 'features'), '--segments_dir', str(inputs / 'segments'),
            '--output_root', str(root), '--direct_num_workers', '1']  # in-process, so the fault can be injected


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    return copy_sample(tmp_path_factory.mktemp('inputs'), splits=('eval',), shards_per_split=30)


@pytest.mark.parametrize('fault', ['delete', 'truncate'])
def test_a_damaged_output_file_fails_the_seal(inputs, tmp_path, monkeypatch, fault):
    root = tmp_path / 'root'
    build_dataset.run(_args(inputs, root))
    before = (root / 'latest.json').read_bytes()
    close = write._RollingParquetWriter.close
    damaged = []

    def faulty_close(self):
        written = close(self)
        if written and not damaged:
            path = pathlib.Path(written[-1][0])
            damaged.append(path)
            if fault == 'delete':
                path.unlink()
            else:
                path.write_bytes(path.read_bytes()[:100])
        return written

    monkeypatch.setattr(write._RollingParquetWriter, 'close', faulty_close)
    with pytest.raises(Exception, match='output verification failed') as failure:
        build_dataset.run(_args(inputs, root))
    assert str(damaged[0]) in str(failure.value)
    assert (root / 'latest.json').read_bytes() == before
    runs = sorted(p for p in (root / 'runs').iterdir())
    published = json.loads(before)['run_id']
    failed = [r for r in runs if r.name != published]
    assert len(failed) == 1 and not (failed[0] / 'manifest.json').exists()
    assert not (failed[0] / '_spill').exists()   # a failed run leaves no copy of the data behind
