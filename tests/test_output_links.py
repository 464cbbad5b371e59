"""Symbolic links in an output are never followed out of it: the build refuses an output with links where it
writes, lists or deletes (one ``error:`` paragraph, exit 2, nothing touched), and the file helpers never list,
enter or delete a link's target. Nothing outside the output is ever deleted or written."""
import os
import pathlib

import pytest

from pipelines import build_dataset
from pipelines.console import cli_status
from pipelines.errors import EXIT_USAGE, UsageError
from tests.fixtures import build_args, copy_sample
from transforms import fileio
from transforms.sinks import remove_stale


def _outside(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder outside any output, holding part files in the layout the build writes and deletes."""
    outside = tmp_path / 'outside'
    for sub in ('label=%2Fm%2F09x0r', 'label=%2Fm%2F04rlf'):
        (outside / sub).mkdir(parents=True)
        (outside / sub / 'part-00000.parquet').write_bytes(b'not yours')
    (outside / 'part-00001.parquet').write_bytes(b'not yours either')
    return outside


def _snapshot(folder: pathlib.Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_list_files_never_follows_a_link(tmp_path):
    outside = _outside(tmp_path)
    out = tmp_path / 'out'
    (out / 'clips' / 'split=eval').mkdir(parents=True)
    mine = out / 'clips' / 'split=eval' / 'part-00000.parquet'
    mine.write_bytes(b'x')
    (out / 'clips' / 'split=train').symlink_to(outside)                        # a folder link: not entered
    (out / 'clips' / 'split=eval' / 'part-00009.parquet').symlink_to(outside / 'part-00001.parquet')
    (out / 'clips' / 'split=eval' / 'part-00008.parquet').symlink_to(tmp_path / 'gone')   # dangling
    listed = [p for p, _ in fileio.list_files(str(out / 'clips'))]
    assert listed == [str(mine), str(out / 'clips' / 'split=eval' / 'part-00008.parquet'),
                      str(out / 'clips' / 'split=eval' / 'part-00009.parquet')]
    (tmp_path / 'linked').symlink_to(out / 'clips')                            # the folder itself a link
    assert fileio.list_files(str(tmp_path / 'linked')) == []
    before = _snapshot(outside)
    assert remove_stale(str(out), []) == listed                               # links removed as links
    assert _snapshot(outside) == before and not any((out / 'clips' / 'split=eval').iterdir())


def test_delete_and_delete_tree_remove_links_not_targets(tmp_path):
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'file-link').symlink_to(outside / 'part-00001.parquet')
    (out / 'dir-link').symlink_to(outside)
    fileio.delete([str(out / 'file-link'), str(out / 'dir-link')])
    assert not os.path.lexists(out / 'file-link') and not os.path.lexists(out / 'dir-link')
    (out / 'spill').mkdir()
    (out / 'spill' / 'inner').symlink_to(outside)
    fileio.delete_tree(str(out / 'spill'))
    (out / 'spill-link').symlink_to(outside)
    fileio.delete_tree(str(out / 'spill-link'))
    assert not os.path.lexists(out / 'spill') and not os.path.lexists(out / 'spill-link')
    assert _snapshot(outside) == before


@pytest.mark.parametrize('plant', ['clips', 'clips/split=eval', 'clips/split=eval/label=x/part-00000.parquet',
                                   'classes.parquet', '_spill'])
def test_the_build_refuses_links_where_it_writes(plant, tmp_path):
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=1)
    outside = _outside(tmp_path)
    out = tmp_path / 'out'
    link = out / plant
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / 'part-00001.parquet' if plant.endswith('.parquet') else outside)
    with pytest.raises(UsageError, match=f'--output_dir {out}: a symbolic link where the build writes, lists '
                                             f'and deletes files: {link} \\(to {outside}'):
        build_dataset.parse(build_args(inputs, out))


def test_a_rebuild_into_an_output_with_a_planted_link_touches_nothing_outside(tmp_path):
    """The issue's case: a link inside out/clips/ to a folder of part files; the rebuild stops before it
    writes or deletes anything (it used to write its partitions there, and delete the rest as stale)."""
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=1)
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    out = tmp_path / 'out'
    (out / 'clips').mkdir(parents=True)
    (out / 'clips' / 'split=eval').symlink_to(outside)
    (out / 'manifest.json').write_text('{"old": true}')
    status = cli_status(build_dataset.run, build_args(inputs, out, '--direct_num_workers', '1'))
    assert _snapshot(outside) == before
    assert status == EXIT_USAGE
    assert (out / 'manifest.json').read_text() == '{"old": true}'      # nothing deleted either


def test_output_root_refuses_a_linked_runs_folder(tmp_path):
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=1)
    outside = _outside(tmp_path)
    root = tmp_path / 'root'
    root.mkdir()
    (root / 'runs').symlink_to(outside)
    with pytest.raises(UsageError, match=f'--output_root {root}: a symbolic link .* {root / "runs"} '):
        build_dataset.parse(build_args(inputs, root)[:-2] + ['--output_root', str(root)])
    (root / 'runs').unlink()
    (root / 'runs').mkdir()
    (root / 'runs' / '20200101T000000.000000Z-aaaaaa').symlink_to(outside)   # pruning would delete it
    with pytest.raises(UsageError, match='20200101T000000.000000Z-aaaaaa'):
        build_dataset.parse(build_args(inputs, root)[:-2] + ['--output_root', str(root)])


def test_the_report_is_never_written_through_a_link(tmp_path):
    from transforms import fileio
    outside = tmp_path / 'outside.html'
    outside.write_text('keep me')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'report.html').symlink_to(outside)
    fileio.write_bytes(str(tmp_path / 'out' / 'report.html'), b'<html>report</html>')
    assert outside.read_text() == 'keep me'
    assert not (tmp_path / 'out' / 'report.html').is_symlink()
    assert (tmp_path / 'out' / 'report.html').read_bytes() == b'<html>report</html>'
