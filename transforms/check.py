"""CheckSegments: the whole-split checks (see transforms.core.check) as one step of the graph."""
from __future__ import annotations

import logging
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam import PCollection

from audioset_beam import layout
from audioset_beam.schema import MISSING_FEATURES, MISSING_STRONG
from transforms import fileio
from transforms.core import stats
from transforms.core.check import WritePlan, check_splits
from transforms.core.ontology import Vocabulary
from transforms.deadletters import DEAD_LETTERS, STATS, tag_dead_letters
from transforms.label import KeyBatch, strong_side_input
from transforms.segments import load_index
from transforms.strong import load_strong
from transforms.write import WrittenFile

log = logging.getLogger(__name__)


class _CheckFn(beam.DoFn):
    def __init__(self, vocab: Vocabulary, output_dir: str):
        self.vocab, self.output_dir = vocab, output_dir

    def process(self, keyed, indexes: dict, strong_paths: dict):
        started = time.perf_counter()
        _, batches = keyed
        csvs = {split: load_index(*paths) for split, paths in indexes.items()}
        strong = load_strong(strong_paths) if strong_paths else {}
        checked = check_splits(list(batches), csvs, self.vocab, strong)
        yield from tag_dead_letters(checked.dead_letters, log)
        for table_def, folder, tables in ((MISSING_FEATURES, layout.MISSING_FEATURES_DIR, checked.missing),
                                          (MISSING_STRONG, layout.MISSING_STRONG_DIR, checked.missing_strong)):
            for split, table in sorted(tables.items()):
                path = layout.part_file(layout.join(self.output_dir, folder, layout.hive_segment('split', split)), 0)
                fileio.write_parquet(path, table)
                yield beam.pvalue.TaggedOutput('files', WrittenFile(table_def.name, path, table.num_rows,
                                                                    (('split', split),)))
        stats.bump(checked.stats, 'timings', 'check', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, checked.stats)
        yield checked.plan


class CheckOutputs(NamedTuple):
    """CheckSegments' outputs."""
    plan: PCollection[WritePlan]          # one: the rows to leave out, the label counts
    dead_letters: PCollection[dict]
    stats: PCollection[dict]
    files: PCollection[WrittenFile]       # missing_features/, missing_strong/


class CheckSegments(beam.PTransform):
    """PCollection[KeyBatch] -> CheckOutputs: one WritePlan (rows to leave out, label counts), dead letters,
    stats, and the files written (missing_features/, missing_strong/).

    All key batches meet in one place: ~50 bytes per segment (ids, labels, provenance; no embeddings), so
    the full release's 2M segments take a few hundred MB on one worker, and every split is checked whole.
    """

    def __init__(self, vocab: Vocabulary, segment_indexes, output_dir: str, strong_index=None):
        super().__init__()
        self.vocab, self.segment_indexes, self.output_dir = vocab, segment_indexes, output_dir
        self.strong_index = strong_index

    def expand(self, key_batches: PCollection[KeyBatch]) -> CheckOutputs:
        out = (key_batches
               | 'KeyAll' >> beam.Map(lambda b: (0, b)).with_output_types(beam.typehints.Tuple[int, KeyBatch])
               | 'GatherKeys' >> beam.GroupByKey()
               | 'CheckSplits' >> beam.ParDo(_CheckFn(self.vocab, self.output_dir),
                                             beam.pvalue.AsDict(self.segment_indexes),
                                             strong_side_input(key_batches.pipeline, self.strong_index)).with_outputs(
                   DEAD_LETTERS, STATS, 'files', main='plan'))
        return CheckOutputs(out.plan, out[DEAD_LETTERS], out[STATS], out.files)
