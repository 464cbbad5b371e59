"""VGGish-compatible embeddings for new audio: the reference computation as pure numpy + TensorFlow 2.

audio file --decode_audio--> samples --waveform_to_examples--> [n, 96, 64] --VGGish--> [n, 128] float
--Postprocessor.quantize--> [n, 128] uint8 (the released AudioSet form). See docs/vggish.md.
"""
from transforms.core.vggish.audio import AudioDecodeError, decode_audio
from transforms.core.vggish.frontend import audio_to_examples, waveform_to_examples
from transforms.core.vggish.model import CheckpointError, VGGish, load_vggish, read_checkpoint
from transforms.core.vggish.postprocess import PcaParamsError, Postprocessor
from transforms.core.vggish.weights import WeightFiles, WeightsError, fingerprint, write_random_weights

__all__ = [
    'AudioDecodeError', 'decode_audio', 'audio_to_examples', 'waveform_to_examples', 'CheckpointError', 'VGGish',
    'load_vggish', 'read_checkpoint', 'PcaParamsError', 'Postprocessor', 'WeightFiles', 'WeightsError',
    'fingerprint', 'write_random_weights',
]
