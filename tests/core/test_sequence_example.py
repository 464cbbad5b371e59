import numpy as np

from tests.fixtures import SAMPLE, record
from transforms.core import sequence_example, tfrecord


def _real_payloads(split='eval', n=20):
    out = []
    for shard in sorted((SAMPLE / 'features' / split).glob('*.tfrecord')):
        out += [f.payload for f in tfrecord.iter_records(shard.read_bytes())]
        if len(out) >= n:
            return out[:n]
    return out


def test_real_records_agree_with_protobuf():
    from tensorflow.core.example import example_pb2
    payloads = _real_payloads()
    records, bad = sequence_example.parse_records(payloads)
    assert bad == [] and len(records) == len(payloads)
    for i, p in enumerate(payloads):
        ex = example_pb2.SequenceExample.FromString(p)
        ctx = ex.context.feature
        assert records.video_id[i] == ctx['video_id'].bytes_list.value[0].decode()
        assert records.start_time[i] == ctx['start_time_seconds'].float_list.value[0]
        assert records.labels_of(i).tolist() == list(ctx['labels'].int64_list.value)
        frames = b''.join(f.bytes_list.value[0] for f in ex.feature_lists.feature_list['audio_embedding'].feature)
        lo, hi = records.frame_offsets[i], records.frame_offsets[i + 1]
        assert records.frames[lo:hi].tobytes() == frames


def test_bad_records_are_named_and_the_rest_survive():
    good = record('abc_def-123', 30.0, [0, 137], frames=10, seed=1)
    short = record('short______', 0.0, [1], frames=3, seed=2)
    import tensorflow as tf
    bad_frame = tf.train.SequenceExample.FromString(good)
    bad_frame.feature_lists.feature_list['audio_embedding'].feature[4].bytes_list.value[0] = b'x' * 127
    no_frames = record('noframes___', 0.0, [1], frames=0)
    no_id = tf.train.SequenceExample.FromString(good)
    del no_id.context.feature['video_id']
    payloads = [good, b'\x0a\xff garbage', bad_frame.SerializeToString(), short, no_frames,
                no_id.SerializeToString(), good]
    records, bad = sequence_example.parse_records(payloads)
    assert [(b.position, b.reason) for b in bad] == [
        (1, 'unparseable-record'), (2, 'bad-frame'), (4, 'no-frames'), (5, 'bad-video-id')]
    assert records.position.tolist() == [0, 3, 6]
    assert records.num_frames.tolist() == [10, 3, 10]
    assert records.video_id == ['abc_def-123', 'short______', 'abc_def-123']
    assert records.labels_of(0).tolist() == [0, 137] and records.labels_of(1).tolist() == [1]
    expected = np.random.default_rng(2).integers(0, 256, size=(3, 128), dtype=np.uint8)
    assert np.array_equal(records.frames[10:13], expected)


def test_missing_end_time_is_start_plus_frames():
    import tensorflow as tf
    ex = tf.train.SequenceExample.FromString(record('abcdefghijk', 20.0, [0], frames=7))
    del ex.context.feature['end_time_seconds']
    records, bad = sequence_example.parse_records([ex.SerializeToString()])
    assert not bad and records.end_time.tolist() == [27.0]


def test_select_keeps_ragged_columns_aligned():
    payloads = [record(f'vid{i:08d}', float(i), [i], frames=i + 1, seed=i) for i in range(4)]
    records, _ = sequence_example.parse_records(payloads)
    sub = records.select(np.array([False, True, False, True]))
    assert sub.video_id == ['vid00000001', 'vid00000003']
    assert sub.num_frames.tolist() == [2, 4]
    assert sub.label_values.tolist() == [1, 3]
    assert np.array_equal(sub.frames[2:], records.frames[records.frame_offsets[3]:])


def _edit(payload, fn):
    import tensorflow as tf
    ex = tf.train.SequenceExample.FromString(payload)
    fn(ex)
    return ex.SerializeToString()


def _set_start(value):
    def fn(ex):
        ex.context.feature['start_time_seconds'].float_list.value[:] = [value]
    return fn


def test_hostile_records_are_dead_letters_not_crashes():
    good = record('abcdefghijk', 30.0, [0], frames=10, seed=3)
    frames = lambda ex: ex.feature_lists.feature_list['audio_embedding'].feature  # noqa: E731

    def two_values(ex):
        frames(ex)[3].bytes_list.value.append(b'y' * 128)

    def no_value(ex):
        del frames(ex)[2].bytes_list.value[:]

    def many_frames(ex):
        for _ in range(490):
            frames(ex).add().bytes_list.value.append(b'z' * 128)

    def end_before_start(ex):
        ex.context.feature['end_time_seconds'].float_list.value[:] = [20.0]

    def set_id(v):
        def fn(ex):
            ex.context.feature['video_id'].bytes_list.value[:] = [v]
        return fn

    def two_ids(ex):
        ex.context.feature['video_id'].bytes_list.value.append(b'other______')

    cases = [
        (_set_start(float('nan')), 'bad-start-time'), (_set_start(float('inf')), 'bad-start-time'),
        (_set_start(-5.0), 'bad-start-time'), (two_values, 'bad-frame'), (no_value, 'bad-frame'),
        (many_frames, 'too-many-frames'), (end_before_start, 'bad-end-time'),
        (set_id(b'../../etc/passwd'), 'bad-video-id'), (set_id(b'abc\ndef'), 'bad-video-id'),
        (set_id(b'\xff\xfe'), 'bad-video-id'), (set_id(b''), 'bad-video-id'), (two_ids, 'bad-video-id'),
    ]
    payloads = [good] + [_edit(good, fn) for fn, _ in cases] + [good]
    records, bad = sequence_example.parse_records(payloads)
    assert [(b.position, b.reason) for b in bad] == [(i + 1, reason) for i, (_, reason) in enumerate(cases)]
    assert records.position.tolist() == [0, len(payloads) - 1]
    assert records.frames.shape == (20, 128)
    assert np.array_equal(records.frames[:10], records.frames[10:])
