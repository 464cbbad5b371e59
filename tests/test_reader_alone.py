"""The reader package stands alone: audioset_beam imports nothing of the build (transforms, pipelines) nor
apache_beam, so a user can install and use it without them; the build imports the reader, never the reverse;
transforms/core/ never imports apache_beam."""
import ast
import json
import pathlib
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from tests.fixtures import ROOT

BUILD = ('transforms', 'pipelines')

# Run in a fresh interpreter: importing any of BLOCKED raises ImportError, and every attempt is reported.
CHILD = '''
import json, sys
BLOCKED = ('transforms', 'pipelines', 'apache_beam', 'tensorflow')
tried = []

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            tried.append(name)
            raise ImportError(f'{name} is blocked: the reader must not need it')
        return None

sys.meta_path.insert(0, Block())
import audioset_beam
root = sys.argv[1]
arrays = audioset_beam.load_split(root, 'eval')
streamed = [s for b in audioset_beam.iter_batches(root, 'eval', batch_size=7) for s in b['segment_id']]
print(json.dumps({'loaded': sorted(arrays.segment_ids.tolist()), 'streamed': streamed, 'tried': tried,
                  'frames': list(arrays.frames.shape), 'modules': sorted({m.split('.')[0] for m in sys.modules})}))
'''


def _imported(path: pathlib.Path) -> set[str]:
    """Every module an ``import`` or ``from`` statement in ``path`` names, wherever it stands (top level or in a
    function); relative imports resolved against the file's package."""
    names = set()
    package = '.'.join(path.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
    return names


def _offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for path in sorted((ROOT / folder).rglob('*.py')):
        bad = sorted(n for n in _imported(path) if n.split('.')[0] in forbidden)
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


def test_reader_package_imports_nothing_of_the_build():
    assert _offenders('audioset_beam', BUILD + ('apache_beam',)) == {}


def test_reader_imports_tensorflow_only_inside_tf_dataset():
    """tensorflow is optional: imported inside the functions that need it, never at module level."""
    for path in sorted((ROOT / 'audioset_beam').rglob('*.py')):
        top = ast.parse(path.read_text()).body
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names} | {
            n.module or '' for n in top if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split('.')[0] == 'tensorflow'}, path


def test_core_never_imports_apache_beam():
    assert _offenders('transforms/core', ('apache_beam', 'pipelines')) == {}


@pytest.fixture(scope='module')
def output_root(tmp_path_factory):
    """The bundled sample, built once by the command line into an --output_root (so reading it goes through
    latest.json and runs/<run_id>/)."""
    root = tmp_path_factory.mktemp('root')
    subprocess.run([sys.executable, '-m', 'pipelines.build_dataset', '--output_root', str(root)], cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    return root


def test_reader_reads_a_build_without_the_build_installed(output_root):
    done = subprocess.run([sys.executable, '-c', CHILD, str(output_root)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got['tried'] == []
    assert not set(got['modules']) & {'transforms', 'pipelines', 'apache_beam', 'tensorflow'}
    # The same segments as the files hold, read directly with pyarrow: each eval segment once.
    run = json.loads((output_root / 'latest.json').read_text())['run_id']
    clips = ds.dataset(output_root / 'runs' / run / 'clips', partitioning='hive')
    expected = clips.to_table(['segment_id'], filter=(ds.field('split') == 'eval') & ds.field('is_primary')
                              & (ds.field('embedding_source') == 'released'))['segment_id'].to_pylist()
    assert expected and got['loaded'] == sorted(expected)
    assert sorted(got['streamed']) == sorted(expected)
    assert got['frames'] == [len(expected), 10, 128]
