"""examples/train_classifier.py on the bundled sample's build: it learns (beats the label-frequency baseline on
eval mAP and AUC) and is deterministic (the same seed prints the same figures)."""
import json

import pytest

from examples import train_classifier
from pipelines import build_dataset


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('out')
    build_dataset.run(['--output_dir', str(out)])
    return out


def test_classifier_beats_the_frequency_baseline_and_is_deterministic(dataset, tmp_path, capsys):
    args = ['--dataset', str(dataset), '--epochs', '30', '--metrics_json', str(tmp_path / 'm.json')]
    first = train_classifier.main(args)
    printed = capsys.readouterr().out
    assert 'label-frequency baseline' in printed and 'mAP' in printed
    assert json.loads((tmp_path / 'm.json').read_text()) == first
    assert first['train_segments'] > 1000 and first['eval_segments'] > 900
    model, baseline = first['model'], first['baseline']
    assert baseline['AUC'] == pytest.approx(0.5) and baseline['d_prime'] == pytest.approx(0.0)
    assert model['mAP'] > 2 * baseline['mAP'] and model['AUC'] > 0.7 and model['d_prime'] > 0.5
    assert train_classifier.main(args) == first  # seeded: same figures again


def test_loss_weighting_runs(dataset):
    m = train_classifier.main(['--dataset', str(dataset), '--epochs', '2', '--weighting', 'loss'])
    assert m['weighting'] == 'loss' and m['model']['mAP'] > m['baseline']['mAP']
