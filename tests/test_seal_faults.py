"""Fault injection into the seal: a file the run wrote goes missing, is cut short, or is rewritten readable but
one row short before the manifest. The build must fail, write no manifest, and leave latest.json where it was."""
import json
import pathlib

import pyarrow.parquet as pq
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


@pytest.mark.parametrize('fault', ['delete', 'truncate', 'one_row_fewer'])
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
            elif fault == 'truncate':
                path.write_bytes(path.read_bytes()[:100])
            else:   # a valid Parquet file with the same schema, one row short: only its row count betrays it
                table = pq.read_table(path)
                pq.write_table(table.slice(1), path)
                assert pq.ParquetFile(path).metadata.num_rows == table.num_rows - 1 == written[-1][1] - 1
        return written

    monkeypatch.setattr(write._RollingParquetWriter, 'close', faulty_close)
    with pytest.raises(Exception, match='output verification failed') as failure:
        build_dataset.run(_args(inputs, root))
    assert str(damaged[0]) in str(failure.value)
    if fault == 'one_row_fewer':
        assert f'{damaged[0]}: {pq.ParquetFile(damaged[0]).metadata.num_rows} rows, expected' in str(failure.value)
    assert (root / 'latest.json').read_bytes() == before
    runs = sorted(p for p in (root / 'runs').iterdir())
    published = json.loads(before)['run_id']
    failed = [r for r in runs if r.name != published]
    assert len(failed) == 1 and not (failed[0] / 'manifest.json').exists()
    assert not (failed[0] / '_spill').exists()   # a failed run leaves no copy of the data behind
