"""Flag validation of ``python -m pipelines.download_audio`` (no network)."""
import pytest

from pipelines import download_audio
from pipelines.errors import InputError, UsageError
from tests.fixtures import SAMPLE

CSV = str(SAMPLE / 'segments' / 'eval_segments.csv')


@pytest.mark.parametrize('argv,message', [
    (['--audio_dir', 'a'], 'exactly one of'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--missing_features', 'x'], 'exactly one of'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--splits', 'train'], 'unknown split'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--limit', '0'], '--limit'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--include_descendants'], 'needs --labels'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--url_template', 'http://x/'], '{ytid}'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--retry', 'rate_limited'], 'only permanent'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--rate_limit', '0'], 'rate_limit'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--concurrency', '0'], 'concurrency'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--cookies', '/no/such/cookies.txt'], 'no such local file'),
    (['--audio_dir', 'a', '--segments_csv', CSV, '--staging_dir', 's'], 'gs://'),
    (['--audio_dir', 's3://b/a', '--segments_csv', CSV], 'local folder or gs://'),
])
def test_bad_flags_exit_2_naming_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        download_audio.parse(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_selection_is_an_error(tmp_path):
    with pytest.raises(UsageError, match='unknown label'):
        download_audio.run(['--audio_dir', str(tmp_path), '--segments_csv', CSV, '--labels', 'Nope'])
    with pytest.raises(InputError, match='no missing_features'):
        download_audio.run(['--audio_dir', str(tmp_path), '--missing_features', str(tmp_path)])


def test_selection_from_the_bundled_csv_by_label():
    args = download_audio.parse(['--audio_dir', 'a', '--segments_csv', CSV, '--labels', 'Music',
                                 '--include_descendants', '--limit', '25'])
    segments = download_audio.select(args)
    assert len(segments) == 25 and all(s.split == 'eval' for s in segments)
    assert any('/m/04rlf' not in s.labels for s in segments)  # picked through a descendant only


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from transforms.core.download import ledger
    with ledger.Ledger(str(tmp_path / ledger.FILE_NAME)):
        with pytest.raises(UsageError, match='another download run'):
            download_audio.run(['--audio_dir', str(tmp_path), '--segments_csv', CSV, '--limit', '1'])
