"""EmbedAudio: newly downloaded audio -> VGGish embeddings (Beam RunInference) -> labelled clips rows.

    audio items -> ReadFrontEnd (decode, log-mel; reuse a previous run's embedding when the segment, the
    audio bytes and the model are the same) -> RunInference(VGGishModelHandler) -> AssignSplit (which
    segments CSV holds the clip) -> LabelComputed (CSV labels + ontology, like released rows)

Every file ends up in a SegmentBatch (``embedding_source == 'computed'``) or a dead letter.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import math
import re
from typing import Iterable, NamedTuple, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam import PCollection
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from audioset_beam import layout
from audioset_beam.schema import COMPUTED_EMBEDDINGS, SOURCE_COMPUTED, SPLITS, UNLABELLED
from transforms import fileio
from transforms.coders import BatchCoder
from transforms.core import deadletter, stats
from transforms.core.deadletter import Stage
from transforms.core.join import Computed, embedding_array, label_records
from transforms.core.ontology import Vocabulary
from transforms.core.sequence_example import Records
from transforms.deadletters import DEAD_LETTERS, STATS, tag_dead_letters
from transforms.label import KeyBatch, SegmentBatch, key_batch, strong_index_for, strong_side_input
from transforms.segments import load_index
from transforms.write import WrittenFile

log = logging.getLogger(__name__)


class NoAudioFound(ValueError):
    """An --audio path or pattern that matches no audio file (exit status 4: bad input)."""
    exit_code = 4

AUDIO_EXTENSIONS = ('.wav', '.flac', '.mp3', '.m4a', '.aac', '.mp4', '.ogg', '.oga', '.opus', '.webm')
# SegmentBatch group ids of computed clips: after any shard group, one per split.
COMPUTED_GROUP_BASE = 1 << 40


@dataclasses.dataclass(frozen=True, order=True)
class AudioItem:
    """One audio file and the segment it holds."""
    video_id: str
    start: float
    end: float
    path: str

    @property
    def segment_id(self) -> str:
        return layout.segment_id(self.video_id, layout.start_ms(self.start))


_YTID = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
EXAMPLE_HOP_SECONDS = 0.96  # VGGish examples: 0.96 s windows, one per 0.96 s


def plan_audio(audio: Sequence[str], manifest: str | None) -> tuple[list[AudioItem], list[dict]]:
    """Audio files from folders, globs or files (local or gs://), named ``<YTID>_<start>_<end>.<ext>``,
    and/or a manifest CSV with columns path, YTID, start, end (relative paths are taken from the
    manifest's folder). A name or manifest line that cannot be read is a dead letter."""
    items: list[AudioItem] = []
    bad: list[dict] = []
    for spec in audio:
        spec = spec.strip()
        if not spec:
            continue
        if any(c in spec for c in '*?['):
            patterns, filter_ext = [spec], False
        elif spec.lower().endswith(AUDIO_EXTENSIONS):
            patterns, filter_ext = [spec], False
        else:
            patterns, filter_ext = [layout.join(spec, '**')], True
        found = sorted(m.path for m in FileSystems.match(patterns)[0].metadata_list)
        if not found:
            raise NoAudioFound(f'{spec}: no audio files found')
        for path in found:
            if filter_ext and not path.lower().endswith(AUDIO_EXTENSIONS):
                continue
            try:
                ytid, start, end = layout.parse_clip_name(path)
                if not _YTID.match(ytid):
                    raise ValueError(f'{path}: YTID {ytid!r} is not a YouTube id (letters, digits, "-", "_")')
            except ValueError as e:
                bad.append(deadletter.dead_letter(Stage.DISCOVER_AUDIO, 'bad-file-name', path, str(e)))
                continue
            items.append(AudioItem(ytid, start, end, path))
    if manifest:
        base = manifest.rsplit('/', 1)[0]
        rows = csv.reader(io.StringIO(fileio.read_bytes(manifest).decode('utf-8-sig')))
        for line, row in enumerate(rows, start=1):
            if not row or (line == 1 and row[0].strip().lower() == 'path'):
                continue
            try:
                path, ytid, start, end = (c.strip() for c in row)
                item = AudioItem(ytid, float(start), float(end),
                                 path if '://' in path or path.startswith('/') else layout.join(base, path))
                if not (math.isfinite(item.start) and math.isfinite(item.end) and 0 <= item.start < item.end):
                    raise ValueError(f'need finite times with 0 <= start < end, got {start!r}, {end!r}')
                if not _YTID.match(ytid):
                    raise ValueError(f'YTID {ytid!r} is not a YouTube id (letters, digits, "-", "_")')
            except ValueError as e:
                bad.append(deadletter.dead_letter(Stage.DISCOVER_AUDIO, 'bad-manifest-line', manifest,
                                                  f'{row!r}: {e}', line_number=line))
                continue
            items.append(item)
    return sorted(items), bad


@dataclasses.dataclass
class ClipExamples:
    """A decoded clip's log-mel examples, float32 [n, 96, 64], ready for the model."""
    item: AudioItem
    audio_sha256: str
    examples: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.examples.nbytes


@dataclasses.dataclass
class EmbeddedClip:
    """A clip's quantized embedding, uint8 [n, 128]."""
    item: AudioItem
    audio_sha256: str
    frames: np.ndarray
    reused: bool = False

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes


for _cls in (ClipExamples, EmbeddedClip):
    beam.coders.registry.register_coder(_cls, BatchCoder)


class _FrontEndFn(beam.DoFn):
    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint
        self.decoded = Metrics.counter(self.__class__, 'clips-decoded')
        self.shorter = Metrics.counter(self.__class__, 'clips-shorter-than-segment')
        self.reused = Metrics.counter(self.__class__, 'embeddings-reused')
        self.rejected = Metrics.counter(self.__class__, 'clips-rejected')

    def process(self, item: AudioItem, previous: dict):
        from transforms.core.vggish import AudioDecodeError, audio_to_examples
        try:
            data = fileio.read_bytes(item.path)
        except Exception as e:  # noqa: BLE001 -- an unreadable file is that file's dead letter
            self.rejected.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, deadletter.dead_letter(
                Stage.EMBED_AUDIO, 'unreadable-file', item.path, f'{type(e).__name__}: {e}',
                video_id=item.video_id, start_time_seconds=item.start))
            return
        sha = hashlib.sha256(data).hexdigest()
        cached = previous.get((item.segment_id, sha, self.fingerprint))
        if cached is not None:
            self.reused.inc()
            yield beam.pvalue.TaggedOutput('reused', EmbeddedClip(item, sha, cached, reused=True))
            return
        try:
            examples = audio_to_examples(data, name=item.path, expected_seconds=item.end - item.start)
            covered = (len(examples) - 1) * EXAMPLE_HOP_SECONDS + EXAMPLE_HOP_SECONDS + 1.0
            if covered < item.end - item.start:
                # Legitimate at the end of a video, but also what a truncated download looks like: say so.
                self.shorter.inc()
                log.warning('%s: %d frames for a %g s segment (audio shorter than its name says)',
                            item.path, len(examples), item.end - item.start)
        except AudioDecodeError as e:
            self.rejected.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, deadletter.dead_letter(
                Stage.EMBED_AUDIO, e.reason, item.path, str(e), video_id=item.video_id,
                start_time_seconds=item.start))
            return
        self.decoded.inc()
        yield ClipExamples(item, sha, examples)


@dataclasses.dataclass
class LoadedVGGish:
    """The network and the postprocessor, as RunInference shares them (it needs a weak-referenceable object)."""
    network: object
    postprocessor: object


class VGGishModelHandler(ModelHandler[ClipExamples, PredictionResult, LoadedVGGish]):
    """RunInference handler: batches of clips -> quantized VGGish embeddings, one model per worker process.

    Beam 2.77's TensorFlow handler cannot load this model (apache/beam#30616), and a clip is a variable
    number of examples: the handler concatenates a batch of clips into one array for the network and
    splits the result back per clip. Weights are fetched (gs://, https://, local) once per worker and must
    match the fingerprint computed when the pipeline was built.
    """

    def __init__(self, checkpoint: str | None, pca_params: str | None, fingerprint: str,
                 max_batch_clips: int = 16, examples_per_call: int = 64):
        self._checkpoint, self._pca_params = checkpoint, pca_params
        self._fingerprint = fingerprint
        self._max_batch_clips, self._examples_per_call = max_batch_clips, examples_per_call

    def load_model(self) -> LoadedVGGish:
        from transforms.core.vggish import Postprocessor, fingerprint, load_vggish
        from transforms.vggish_weights import resolve_vggish_weights
        files = resolve_vggish_weights(self._checkpoint, self._pca_params)
        got = fingerprint(files.checkpoint, files.pca_params)
        if got != self._fingerprint:
            raise RuntimeError(f'VGGish weights on this worker ({got[:12]}) differ from those the pipeline '
                               f'was built with ({self._fingerprint[:12]}): {files}')
        log.info('loaded VGGish %s', got[:12])
        return LoadedVGGish(load_vggish(files.checkpoint, batch_size=self._examples_per_call),
                            Postprocessor(files.pca_params))

    def run_inference(self, batch: Sequence[ClipExamples], model: LoadedVGGish, inference_args=None
                      ) -> Iterable[PredictionResult]:
        network, post = model.network, model.postprocessor
        examples = np.concatenate([c.examples for c in batch])
        quantized = post.quantize(network(examples))
        bounds = np.cumsum([0] + [len(c.examples) for c in batch])
        for clip, lo, hi in zip(batch, bounds[:-1], bounds[1:]):
            yield PredictionResult(clip, quantized[lo:hi])

    def batch_elements_kwargs(self) -> dict:
        return {'min_batch_size': 1, 'max_batch_size': self._max_batch_clips}

    def get_num_bytes(self, batch: Sequence[ClipExamples]) -> int:
        return sum(c.examples.nbytes for c in batch)

    def get_metrics_namespace(self) -> str:
        return 'VGGishModelHandler'


class _AssignSplitFn(beam.DoFn):
    def process(self, clip: EmbeddedClip, indexes: dict):
        start = np.array([layout.start_ms(clip.item.start)], np.int64)
        for split in SPLITS:
            paths = indexes.get(split)
            if paths and load_index(*paths).lookup([clip.item.video_id], start)[0][0] >= 0:
                yield split, clip
                return
        yield UNLABELLED, clip


class _LabelComputedFn(beam.DoFn):
    def __init__(self, vocab: Vocabulary, fingerprint: str, keep_unlabelled: bool):
        self.vocab, self.fingerprint, self.keep_unlabelled = vocab, fingerprint, keep_unlabelled

    def process(self, split_and_clips, indexes: dict, strong_paths: dict):
        split, clips = split_and_clips
        clips = sorted(clips, key=lambda c: (c.item, c.audio_sha256))
        n = len(clips)
        lengths = np.array([len(c.frames) for c in clips], np.int64)
        frame_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        records = Records(
            position=np.arange(n, dtype=np.int64), video_id=[c.item.video_id for c in clips],
            start_time=np.array([c.item.start for c in clips], np.float64),
            end_time=np.array([c.item.end for c in clips], np.float64),
            label_offsets=np.zeros(n + 1, np.int64), label_values=np.zeros(0, np.int64),
            frame_offsets=frame_offsets, frames=np.concatenate([c.frames for c in clips]).astype(np.uint8))
        computed = Computed(self.fingerprint, [c.audio_sha256 for c in clips], self.keep_unlabelled)
        paths = indexes.get(split)
        strong, strong_split = strong_index_for(split, strong_paths)
        out = label_records(records, split, [c.item.path for c in clips], np.arange(n), np.full(n, -1),
                            self.vocab, load_index(*paths) if paths else None, computed, dedupe=True,
                            strong=strong, strong_split=strong_split)
        yield from tag_dead_letters(out.dead_letters + out.strong_dead_letters, log)
        st = out.stats
        stats.bump(st, 'audio', 'embedded', sum(1 for c in clips if not c.reused))
        stats.bump(st, 'audio', 'reused', sum(1 for c in clips if c.reused))
        yield beam.pvalue.TaggedOutput(STATS, st)
        group = COMPUTED_GROUP_BASE + (SPLITS.index(split) if split in SPLITS else len(SPLITS))
        yield beam.pvalue.TaggedOutput('keys', key_batch(group, split, SOURCE_COMPUTED, out.segments, out.csv_row,
                                                         out.agree, self.vocab, out.strong_row, out.strong_attached))
        yield SegmentBatch(group, split, out.segments)


def computed_table(clips: list[EmbeddedClip], fingerprint: str) -> pa.Table:
    """The cache of computed embeddings a later run reuses (see ``read_previous``)."""
    clips = sorted(clips, key=lambda c: (c.item, c.audio_sha256))
    offsets = np.concatenate([[0], np.cumsum([len(c.frames) for c in clips])]).astype(np.int64)
    frames = np.concatenate([c.frames for c in clips]) if clips else np.zeros((0, 128), np.uint8)
    return pa.table({
        'segment_id': [c.item.segment_id for c in clips], 'audio_sha256': [c.audio_sha256 for c in clips],
        'model_fingerprint': [fingerprint] * len(clips), 'source_file': [c.item.path for c in clips],
        'end_time_seconds': pa.array([c.item.end for c in clips], pa.float64()),
        'embedding': embedding_array(offsets, frames)}, schema=COMPUTED_EMBEDDINGS.schema)


def read_previous(run_dir: str | None) -> dict:
    """(segment_id, audio_sha256, model_fingerprint) -> uint8 frames, from an earlier run's cache."""
    if not run_dir:
        return {}
    path = layout.part_file(layout.join(run_dir, layout.COMPUTED_DIR), 0)
    if not fileio.exists(path):
        return {}
    table = pq.read_table(pa.BufferReader(fileio.read_bytes(path)))
    out = {}
    for seg, sha, fp, emb in zip(table['segment_id'].to_pylist(), table['audio_sha256'].to_pylist(),
                                 table['model_fingerprint'].to_pylist(), table['embedding'].to_pylist()):
        out[(seg, sha, fp)] = np.frombuffer(emb, np.uint8).reshape(-1, 128)
    log.info('%d computed embeddings available for reuse from %s', len(out), run_dir)
    return out


class _WriteComputedFn(beam.DoFn):
    def __init__(self, output_dir: str, fingerprint: str):
        self.output_dir, self.fingerprint = output_dir, fingerprint

    def process(self, clips: list[EmbeddedClip]):
        path = layout.part_file(layout.join(self.output_dir, layout.COMPUTED_DIR), 0)
        rows = fileio.write_parquet(path, computed_table(clips, self.fingerprint))
        yield WrittenFile(COMPUTED_EMBEDDINGS.name, path, rows)


@dataclasses.dataclass(frozen=True)
class EmbedSettings:
    checkpoint: str | None
    pca_params: str | None
    fingerprint: str
    batch_clips: int = 16
    keep_unlabelled: bool = False
    reuse_from: str | None = None


class EmbedOutputs(NamedTuple):
    """EmbedAudio's outputs."""
    segments: PCollection[SegmentBatch]
    keys: PCollection[KeyBatch]
    files: PCollection[WrittenFile]     # the computed-embeddings cache
    dead_letters: PCollection[dict]
    stats: PCollection[dict]


class EmbedAudio(beam.PTransform):
    """PCollection[AudioItem] -> EmbedOutputs: SegmentBatch and KeyBatch per split, the files written, dead
    letters, stats.

    ``segment_indexes`` is the PCollection[(split, (index path, csv path))] of the segment CSVs: a clip is labelled
    from the CSV row of its (YTID, start); without one it is a dead letter ('no-labels') unless
    ``keep_unlabelled``. ``files`` holds the computed-embeddings cache this run wrote. ``strong_index``:
    ReadStrongLabels' ``index``, or None.
    """

    def __init__(self, vocab: Vocabulary, segment_indexes, settings: EmbedSettings, output_dir: str,
                 strong_index=None):
        super().__init__()
        self.vocab, self.segment_indexes, self.settings, self.output_dir = vocab, segment_indexes, settings, output_dir
        self.strong_index = strong_index

    def expand(self, items: PCollection[AudioItem]) -> EmbedOutputs:
        s = self.settings
        previous = (items.pipeline | 'ReusePlan' >> beam.Create([s.reuse_from])
                    | 'ReadPreviousEmbeddings' >> beam.Map(read_previous))
        front = (items
                 | 'Redistribute' >> beam.Reshuffle()
                 | 'ReadFrontEnd' >> beam.ParDo(_FrontEndFn(s.fingerprint), beam.pvalue.AsSingleton(previous))
                 .with_output_types(ClipExamples).with_outputs(DEAD_LETTERS, 'reused', main='examples'))
        embedded = (front.examples
                    | 'RunVGGish' >> RunInference(VGGishModelHandler(s.checkpoint, s.pca_params, s.fingerprint,
                                                                     s.batch_clips))
                    | 'ToEmbeddedClip' >> beam.Map(lambda r: EmbeddedClip(r.example.item, r.example.audio_sha256,
                                                                         np.asarray(r.inference, np.uint8)))
                    .with_output_types(EmbeddedClip))
        clips = (embedded, front.reused) | 'AllClips' >> beam.Flatten()
        files = (clips | 'CollectComputed' >> beam.combiners.ToList()
                 | 'WriteComputedCache' >> beam.ParDo(_WriteComputedFn(self.output_dir, s.fingerprint)))
        indexes = beam.pvalue.AsDict(self.segment_indexes)
        labelled = (clips
                    | 'AssignSplit' >> beam.ParDo(_AssignSplitFn(), indexes)
                    | 'GroupBySplit' >> beam.GroupByKey()
                    | 'LabelComputed' >> beam.ParDo(_LabelComputedFn(self.vocab, s.fingerprint, s.keep_unlabelled),
                                                    indexes, strong_side_input(items.pipeline, self.strong_index)
                                                    ).with_output_types(SegmentBatch).with_outputs(
                        DEAD_LETTERS, STATS, 'keys', main='segments'))
        dead = (front[DEAD_LETTERS], labelled[DEAD_LETTERS]) | 'FlattenAudioDeadLetters' >> beam.Flatten()
        return EmbedOutputs(labelled.segments, labelled.keys, files, dead, labelled[STATS])
