"""Random VGGish weights, written once per test session by the project's own tool, and the loaded model."""
import pytest

from pipelines import make_vggish_weights
from transforms.core.vggish.model import load_vggish
from transforms.core.vggish.postprocess import Postprocessor

SEED = 7


@pytest.fixture(scope='session')
def vggish_files(tmp_path_factory):
    out = tmp_path_factory.mktemp('vggish_weights')
    return make_vggish_weights.run(['--out_dir', str(out), '--seed', str(SEED)])


@pytest.fixture(scope='session')
def vggish_model(vggish_files):
    # Small batches: the tests care about numbers, and 2 cores run a batch of 8 in ~0.1 s.
    return load_vggish(vggish_files.checkpoint, batch_size=8)


@pytest.fixture(scope='session')
def postprocessor(vggish_files):
    return Postprocessor(vggish_files.pca_params)
