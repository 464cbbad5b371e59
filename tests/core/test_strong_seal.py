"""The seal (``verify_and_summarize``) on AudioSet Strong file counts, by hand: rejected lines count against
--max_bad_fraction per file, and a file given but not usable at all fails the run whatever the threshold."""
import pytest

from transforms.core.seal import BuildFailed
from transforms.sinks import verify_and_summarize


def seal(tmp_path, files: dict, max_bad_fraction: float = 0.05) -> dict:
    return verify_and_summarize({'strong': {'files': files}}, [], str(tmp_path), max_bad_fraction)


def entry(name: str, lines_in: int, rejected: int, dropped: str | None = None) -> dict:
    return {'file': f'/in/{name}', 'lines_in': lines_in, 'lines_rejected': rejected, 'rows_ok': lines_in - rejected,
            'dropped': dropped}


def test_rejected_lines_at_the_threshold_seal_and_are_in_the_manifest(tmp_path):
    body = seal(tmp_path, {'train': entry('audioset_train_strong.tsv', 100, 5)})
    assert body['status'] == 'complete'
    assert body['strong']['files']['train']['lines_rejected'] == 5


def test_rejected_lines_above_the_threshold_fail_naming_the_file(tmp_path):
    with pytest.raises(BuildFailed, match=r'too much bad input \(more than --max_bad_fraction=0.05\):\n'
                                          r'  /in/audioset_eval_strong.tsv: 6 of 100 lines rejected \(6.0%\)'):
        seal(tmp_path, {'train': entry('audioset_train_strong.tsv', 100, 5),
                        'eval': entry('audioset_eval_strong.tsv', 100, 6)})
    assert seal(tmp_path, {'eval': entry('audioset_eval_strong.tsv', 100, 6)}, 0.1)['status'] == 'complete'


@pytest.mark.parametrize('max_bad_fraction', [0.05, 1.0])
def test_a_file_dropped_whole_fails_naming_the_file_and_why(tmp_path, max_bad_fraction):
    why = "bad header: line 1 must be the header 'segment_id...'"
    with pytest.raises(BuildFailed, match=r'/in/audioset_train_strong.tsv: AudioSet Strong file not used at all: '
                                          r'bad header: line 1 must be'):
        seal(tmp_path, {'train': entry('audioset_train_strong.tsv', 900, 900, why),
                        'eval': entry('audioset_eval_strong.tsv', 100, 0)}, max_bad_fraction)
