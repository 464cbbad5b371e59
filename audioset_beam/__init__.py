"""Reading audioset-beam's Parquet output for training: ``load_split`` (one split as arrays), ``iter_batches``
and ``tf_dataset`` (streamed), and the frame helpers. See docs/reading.md."""
from audioset_beam.metrics import d_prime, evaluate, frequency_baseline
from audioset_beam.reading import (DEQUANT_OFFSET, DEQUANT_SCALE, Dataset, SplitNotBuilt, TrainingArrays,
                                   Vocabulary, decode_frames, dequantize, frames_of, iter_batches, load_split, mean_pool,
                                   open_dataset, output_signature, tf_dataset, vocabulary)

__all__ = ['DEQUANT_OFFSET', 'DEQUANT_SCALE', 'Dataset', 'SplitNotBuilt', 'TrainingArrays', 'Vocabulary', 'd_prime', 'decode_frames',
           'dequantize', 'evaluate', 'frames_of', 'frequency_baseline', 'iter_batches', 'load_split', 'mean_pool',
           'open_dataset', 'output_signature', 'tf_dataset', 'vocabulary']
