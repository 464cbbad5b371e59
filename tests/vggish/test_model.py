"""Checkpoint round trip of the weights tool, and the TF2 network against an independent numpy network."""
import numpy as np
import pytest

from tests.vggish import signals
from transforms.core.vggish import frontend, model, weights

# Written out here rather than read from params, so the test checks params too.
EXPECTED_SHAPES = {
    'vggish/conv1/weights': (3, 3, 1, 64), 'vggish/conv1/biases': (64,),
    'vggish/conv2/weights': (3, 3, 64, 128), 'vggish/conv2/biases': (128,),
    'vggish/conv3/conv3_1/weights': (3, 3, 128, 256), 'vggish/conv3/conv3_1/biases': (256,),
    'vggish/conv3/conv3_2/weights': (3, 3, 256, 256), 'vggish/conv3/conv3_2/biases': (256,),
    'vggish/conv4/conv4_1/weights': (3, 3, 256, 512), 'vggish/conv4/conv4_1/biases': (512,),
    'vggish/conv4/conv4_2/weights': (3, 3, 512, 512), 'vggish/conv4/conv4_2/biases': (512,),
    'vggish/fc1/fc1_1/weights': (12288, 4096), 'vggish/fc1/fc1_1/biases': (4096,),
    'vggish/fc1/fc1_2/weights': (4096, 4096), 'vggish/fc1/fc1_2/biases': (4096,),
    'vggish/fc2/weights': (4096, 128), 'vggish/fc2/biases': (128,),
}


def numpy_vggish(w, examples):
    """The network in float64 numpy: SAME 3x3 convolutions as nine shifted matrix products."""
    def conv(x, name):
        k, b = w[name + '/weights'].astype(np.float64), w[name + '/biases'].astype(np.float64)
        n, h, wd, _ = x.shape
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros((n, h, wd, k.shape[3]))
        for dy in range(3):
            for dx in range(3):
                out += padded[:, dy:dy + h, dx:dx + wd, :] @ k[dy, dx]
        return np.maximum(out + b, 0.0)

    def pool(x):
        n, h, wd, c = x.shape
        return x.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))

    def fc(x, name):
        return x @ w[name + '/weights'].astype(np.float64) + w[name + '/biases']

    x = np.asarray(examples, np.float64)[..., None]
    x = pool(conv(x, 'vggish/conv1'))
    x = pool(conv(x, 'vggish/conv2'))
    x = pool(conv(conv(x, 'vggish/conv3/conv3_1'), 'vggish/conv3/conv3_2'))
    x = pool(conv(conv(x, 'vggish/conv4/conv4_1'), 'vggish/conv4/conv4_2'))
    x = x.reshape(len(x), -1)                   # NHWC row-major
    x = np.maximum(fc(x, 'vggish/fc1/fc1_1'), 0.0)
    x = np.maximum(fc(x, 'vggish/fc1/fc1_2'), 0.0)
    return fc(x, 'vggish/fc2')                  # no activation


def test_checkpoint_round_trip(vggish_files):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(vggish_files.checkpoint)
    shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
    assert shapes == EXPECTED_SHAPES
    assert sum(int(np.prod(s)) for s in shapes.values()) == 72_141_184
    assert all(d == tf.float32 for d in reader.get_variable_to_dtype_map().values())
    from tests.vggish.conftest import SEED
    again = weights.random_weights(SEED)
    for name in ('vggish/conv1/weights', 'vggish/conv4/conv4_2/biases', 'vggish/fc2/weights'):
        np.testing.assert_array_equal(reader.get_tensor(name), again[name])
    # One file, like the official vggish_model.ckpt (V1 format), not a V2 index + data pair.
    assert weights.checkpoint_files(vggish_files.checkpoint) == [vggish_files.checkpoint]


def test_checkpoint_reader_returns_every_tensor_under_its_own_name(vggish_files):
    """read_checkpoint against TensorFlow's V1 restore op, tensor by tensor and name by name, and against the
    values the generator drew: the biases of conv3_1/conv3_2, conv4_1/conv4_2 and fc1_1/fc1_2 share shapes,
    so a swap could pass every shape check."""
    import tensorflow as tf
    from tests.vggish.conftest import SEED
    ours = model.read_checkpoint(vggish_files.checkpoint)
    drawn = weights.random_weights(SEED)
    assert set(ours) == set(drawn) == set(EXPECTED_SHAPES)
    for name in EXPECTED_SHAPES:
        restored = tf.raw_ops.Restore(file_pattern=vggish_files.checkpoint, tensor_name=name, dt=tf.float32).numpy()
        assert ours[name].dtype == np.float32 and ours[name].shape == EXPECTED_SHAPES[name], name
        np.testing.assert_array_equal(ours[name], restored, err_msg=name)
        np.testing.assert_array_equal(ours[name], drawn[name], err_msg=name)
    same_shape = [(a, b) for a in EXPECTED_SHAPES for b in EXPECTED_SHAPES if a < b and EXPECTED_SHAPES[a] == EXPECTED_SHAPES[b]]
    assert len(same_shape) >= 3 and all(not np.array_equal(drawn[a], drawn[b]) for a, b in same_shape)


def test_v2_checkpoints_load_too(tmp_path, vggish_files):
    small = {name: np.full(shape, 0.5, np.float32) for name, shape in EXPECTED_SHAPES.items()
             if 'fc1' not in name}
    prefix = weights.write_checkpoint(small, str(tmp_path / 'v2' / 'model.ckpt'), fmt=weights.V2)
    assert len(weights.checkpoint_files(prefix)) == 2
    with pytest.raises(model.CheckpointError, match='fc1_1'):    # and a missing variable is named
        model.read_checkpoint(prefix)


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    bad = tmp_path / 'not_a_checkpoint'
    bad.write_bytes(b'hello')
    with pytest.raises(model.CheckpointError):
        model.read_checkpoint(str(bad))
    wrong = {name: np.zeros(shape, np.float32) for name, shape in EXPECTED_SHAPES.items()}
    wrong['vggish/fc2/weights'] = np.zeros((4096, 64), np.float32)
    path = weights.write_checkpoint(wrong, str(tmp_path / 'wrong.ckpt'))
    with pytest.raises(model.CheckpointError, match='fc2/weights'):
        model.read_checkpoint(path)


def test_model_matches_numpy_network(vggish_files, vggish_model):
    examples = np.concatenate([
        frontend.waveform_to_examples(signals.signal('chirp', 44100, 1.0), 44100),
        frontend.waveform_to_examples(signals.signal('noise', 16000, 1.0, seed=3), 16000),
        frontend.waveform_to_examples(signals.signal('sine', 16000, 1.0) * 1e-4, 16000)])
    assert examples.shape == (3, 96, 64)
    ours = vggish_model(examples)
    # The weights as generated, by name, not as our checkpoint reader returns them: a reader that swapped two
    # same-shape tensors would otherwise feed the same wrong weights to both networks.
    from tests.vggish.conftest import SEED
    expected = numpy_vggish(weights.random_weights(SEED), examples)
    assert ours.shape == (3, 128) and ours.dtype == np.float32
    spread = expected.max() - expected.min()
    assert np.abs(ours - expected).max() / spread <= 2e-3
    assert np.abs(ours - expected).max() / spread <= 1e-5   # float32 precision, in fact
    assert 0.2 < ours.std() < 3.0    # the random weights keep embeddings O(1)


def test_batching_and_empty_input(vggish_model):
    x = np.random.default_rng(0).normal(-2.0, 1.5, (11, 96, 64)).astype(np.float32)
    whole = vggish_model(x)                      # batches of 8: 8 + 3
    np.testing.assert_allclose(whole[8:], vggish_model(x[8:]), rtol=1e-5, atol=1e-5)
    empty = vggish_model(np.zeros((0, 96, 64), np.float32))
    assert empty.shape == (0, 128) and empty.dtype == np.float32
    with pytest.raises(ValueError, match='96, 64'):
        vggish_model(np.zeros((2, 64, 96), np.float32))


def test_every_clip_of_an_inference_batch_gets_its_own_frames(vggish_model, postprocessor):
    """RunInference's handler concatenates a batch of clips for the network and splits the result back: each
    clip of a batch of several (different lengths, the batch crossing the network's own batches of 8) must
    get exactly the embedding it gets alone."""
    from transforms.embed import AudioItem, ClipExamples, LoadedVGGish, VGGishModelHandler
    rng = np.random.default_rng(5)
    clips = [ClipExamples(AudioItem(f'clip{i}', 0.0, 10.0, f'clip{i}.wav'), f'{i:064x}',
                          rng.normal(-2.0, 1.5, (n, 96, 64)).astype(np.float32))
             for i, n in enumerate([3, 1, 6, 2, 4])]
    handler = VGGishModelHandler(None, None, fingerprint='unused', max_batch_clips=16)
    results = list(handler.run_inference(clips, LoadedVGGish(vggish_model, postprocessor)))
    assert [r.example for r in results] == clips
    for clip, result in zip(clips, results):
        alone = postprocessor.quantize(vggish_model(clip.examples))
        got = np.asarray(result.inference)
        assert got.shape == alone.shape == (len(clip.examples), 128) and got.dtype == np.uint8, clip.item
        # Bit-identical but for a rare 1-step rounding flip where float sums differ with the batch's makeup;
        # a frame of another clip, or of the neighbouring example, differs by tens.
        diff = np.abs(got.astype(np.int16) - alone)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (clip.item, diff.max())
