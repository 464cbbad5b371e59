"""Selecting segments: from missing_features and segment CSVs, by split, by label through the real ontology."""
import pyarrow as pa
import pytest

from tests.fixtures import SAMPLE
from audioset_beam.schema import MISSING_FEATURES
from transforms.core import download
from transforms.core.ontology import ClassIndex, Ontology, Vocabulary

MUSIC, GUITAR, SPEECH, DOG = '/m/04rlf', '/m/0342h', '/m/09x0r', '/m/0bt9lr'


@pytest.fixture(scope='module')
def vocab():
    return Vocabulary(ClassIndex.from_csv((SAMPLE / 'class_labels_indices.csv').read_bytes()),
                      Ontology.from_json((SAMPLE / 'ontology.json').read_bytes()))


CSV = (b'# Segments csv created Sun Mar  5 10:54:25 2017\n'
       b'# num_ytids=5, num_segs=5, num_unique_labels=4, num_positive_labels=5\n'
       b'# YTID, start_seconds, end_seconds, positive_labels\n'
       b'-guitar_only, 30.000, 40.000, "/m/0342h"\n'
       b'speech_only, 0.000, 10.000, "/m/09x0r"\n'
       b'music_and_d, 10.000, 20.000, "/m/04rlf,/m/0bt9lr"\n'
       b'bad line\n'
       b'-guitar_only, 30.000, 40.000, "/m/0342h"\n'
       b'dog_only___, 2.500, 12.500, "/m/0bt9lr"\n')


def test_csv_rows_become_segments(vocab):
    segments, bad = download.from_segments_csv(CSV, 'eval_segments.csv', 'eval', vocab)
    assert len(bad) == 2  # the unparsable line and the duplicate row
    first = segments[0]
    assert (first.ytid, first.start_ms, first.end_ms, first.split, first.labels) == (
        '-guitar_only', 30000, 40000, 'eval', (GUITAR,))
    assert first.segment_id == '-guitar_only_30000' and first.clip_name == '-guitar_only_30.000_40.000.flac'
    assert first.source == 'eval_segments.csv:4'
    assert segments[-1].clip_name == 'dog_only____2.500_12.500.flac'


def test_music_with_descendants_picks_guitar(vocab):
    segments, _ = download.from_segments_csv(CSV, 'eval_segments.csv', 'eval', vocab)
    music = download.resolve_labels(['Music'], vocab)
    assert music == {MUSIC}
    with_desc = download.resolve_labels(['music'], vocab, include_descendants=True)
    assert GUITAR in with_desc and MUSIC in with_desc and SPEECH not in with_desc
    assert [s.ytid for s in download.select(segments, labels=music)] == ['music_and_d']
    assert [s.ytid for s in download.select(segments, labels=with_desc)] == ['-guitar_only', 'music_and_d']


def test_label_values(vocab):
    assert download.resolve_labels([f'{SPEECH},Dog'], vocab) == {SPEECH, DOG}
    assert download.resolve_labels(['Speech', DOG], vocab) == {SPEECH, DOG}
    revving = download.resolve_labels(['Accelerating, revving, vroom'], vocab)  # a name with commas, whole
    assert len(revving) == 1 and vocab.names[next(iter(revving))] == 'Accelerating, revving, vroom'
    with pytest.raises(ValueError, match="'Not a class'"):
        download.resolve_labels(['Speech,Not a class'], vocab)


def test_splits_limit_and_order(vocab):
    a, _ = download.from_segments_csv(CSV, 'eval_segments.csv', 'eval', vocab)
    b, _ = download.from_segments_csv(CSV.replace(b'dog_only___', b'dog_in_bal_'), 'balanced_train_segments.csv',
                                      'balanced_train', vocab)
    both = a + b
    assert len(download.select(both)) == 5  # a segment id listed twice is fetched once
    bal = download.select(both, splits=download.normalize_splits(['bal_train']))
    assert len(bal) == 4 and {s.split for s in bal} == {'balanced_train'}
    assert [s.ytid for s in download.select(both, limit=2)] == ['-guitar_only', 'speech_only']
    assert download.select(both) == download.select(list(both))  # deterministic
    with pytest.raises(ValueError, match='unknown split'):
        download.normalize_splits(['train'])


def test_missing_features_rows(vocab):
    table = MISSING_FEATURES.from_pylist([
        {'segment_id': 'a_b_c_d_e_f_0', 'video_id': 'a_b_c_d_e_f', 'start_time_seconds': 0.0,
         'end_time_seconds': 10.0, 'labels': [MUSIC], 'csv_file': 'gs://x/eval_segments.csv', 'line_number': 9}])
    (s,), bad = download.from_missing_features(table, 'eval')
    assert bad == []
    assert (s.segment_id, s.clip_name, s.split, s.labels, s.source) == (
        'a_b_c_d_e_f_0', 'a_b_c_d_e_f_0.000_10.000.flac', 'eval', (MUSIC,), 'gs://x/eval_segments.csv:9')
    assert isinstance(table, pa.Table)


def test_split_names_from_paths():
    assert download.split_of_csv('gs://b/balanced_train_segments.csv') == 'balanced_train'
    assert download.split_of_csv('/x/my_list.csv') == 'my_list'
    assert download.split_of_path('out/missing_features/split=eval/part-00000.parquet') == 'eval'
    assert download.split_of_path('out/part-00000.parquet') is None
