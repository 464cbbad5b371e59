"""Every constant of the VGGish reference computation, in one place (see docs/vggish.md)."""
from __future__ import annotations

# Front end: waveform -> log-mel.
SAMPLE_RATE = 16000
STFT_WINDOW_SAMPLES = 400          # 0.025 s
STFT_HOP_SAMPLES = 160             # 0.010 s
FFT_LENGTH = 512                   # next power of two >= 400
NUM_SPECTROGRAM_BINS = FFT_LENGTH // 2 + 1
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
MEL_BREAK_HZ = 700.0               # HTK mel scale: 1127 * ln(1 + f / 700)
MEL_HIGH_Q = 1127.0
LOG_OFFSET = 0.01                  # natural log of (mel + 0.01)
RESAMPLE_FILTER = 'kaiser_best'    # resampy 0.4.3's filter; other resamplers change the numbers a lot

# Examples: 0.96 s windows of frames, no overlap.
EXAMPLE_FRAMES = 96
EXAMPLE_HOP_FRAMES = 96
# The shortest input (at 16 kHz) that yields one example: 96 frames of 400 samples, hop 160.
MIN_SAMPLES = STFT_WINDOW_SAMPLES + (EXAMPLE_FRAMES - 1) * STFT_HOP_SAMPLES   # 15,600 = 0.975 s

# Model.
EMBEDDING_SIZE = 128
SCOPE = 'vggish'
# (checkpoint scope, kind, input channels or features, output channels or features), in network order.
# Every convolution is 3x3 stride 1 SAME + ReLU; a 2x2 stride-2 SAME max-pool follows the layers marked
# 'pool' (after conv1, conv2, conv3_2, conv4_2). fc2 has no activation: the embedding is pre-activation.
LAYERS = (
    ('vggish/conv1', 'conv', 1, 64),
    ('vggish/conv2', 'conv', 64, 128),
    ('vggish/conv3/conv3_1', 'conv', 128, 256),
    ('vggish/conv3/conv3_2', 'conv', 256, 256),
    ('vggish/conv4/conv4_1', 'conv', 256, 512),
    ('vggish/conv4/conv4_2', 'conv', 512, 512),
    ('vggish/fc1/fc1_1', 'fc', 6 * 4 * 512, 4096),
    ('vggish/fc1/fc1_2', 'fc', 4096, 4096),
    ('vggish/fc2', 'fc', 4096, EMBEDDING_SIZE),
)
POOL_AFTER = frozenset({'vggish/conv1', 'vggish/conv2', 'vggish/conv3/conv3_2', 'vggish/conv4/conv4_2'})
CONV_KERNEL = 3
NUM_PARAMETERS = 72_141_184


def variable_shapes() -> dict[str, tuple[int, ...]]:
    """Checkpoint variable name -> shape, for every variable the model reads (18 of them)."""
    shapes = {}
    for scope, kind, n_in, n_out in LAYERS:
        shapes[f'{scope}/weights'] = (CONV_KERNEL, CONV_KERNEL, n_in, n_out) if kind == 'conv' else (n_in, n_out)
        shapes[f'{scope}/biases'] = (n_out,)
    return shapes


# Postprocess: PCA (with whitening) then 8-bit quantization.
PCA_EIGEN_VECTORS_NAME = 'pca_eigen_vectors'
PCA_MEANS_NAME = 'pca_means'
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0

# The official files (https://github.com/tensorflow/models/tree/master/research/audioset/vggish).
CHECKPOINT_NAME = 'vggish_model.ckpt'
PCA_PARAMS_NAME = 'vggish_pca_params.npz'
OFFICIAL_CHECKPOINT_URL = 'https://storage.googleapis.com/audioset/vggish_model.ckpt'
OFFICIAL_PCA_URL = 'https://storage.googleapis.com/audioset/vggish_pca_params.npz'
# name -> (bytes, sha256)
OFFICIAL_FILES = {
    CHECKPOINT_NAME: (291_108_469, '0962b1914e3e053922d957c45bc84a78c985765641dc6bceeeb3a7d8dfecfdf6'),
    PCA_PARAMS_NAME: (73_020, '4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d'),
}
