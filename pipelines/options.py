"""Every flag of the build, declared once. Transforms never see these objects, only plain values."""
from __future__ import annotations

import pathlib

from apache_beam.options.pipeline_options import PipelineOptions

SAMPLE_DIR = pathlib.Path(__file__).resolve().parents[1] / 'sample_data'


class BuildOptions(PipelineOptions):
    """Flags of ``python -m pipelines.build_dataset``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group('AudioSet build')
        g.add_argument('--features_dir', default=str(SAMPLE_DIR / 'features'),
                       help='Released embeddings in the release layout: a folder (local or gs://) with any of '
                            'bal_train/, eval/, unbal_train/ holding *.tfrecord shards. '
                            'Default: the bundled sample.')
        g.add_argument('--segments_dir', default=str(SAMPLE_DIR / 'segments'),
                       help='Folder with any of eval_segments.csv, balanced_train_segments.csv, '
                            'unbalanced_train_segments.csv; may be empty, and then a split is labelled from '
                            'its records\' own label indices. Default: the bundled sample.')
        g.add_argument('--class_index', default=str(SAMPLE_DIR / 'class_labels_indices.csv'),
                       help='class_labels_indices.csv (index,mid,display_name). Default: the bundled copy.')
        g.add_argument('--ontology', default=str(SAMPLE_DIR / 'ontology.json'),
                       help='AudioSet ontology.json. Default: the bundled copy.')
        g.add_argument('--output_dir',
                       help='Where the dataset goes (local or gs://): clips/, classes.parquet, '
                            'missing_features/, dead_letters/ and, last, manifest.json. Give this or --output_root.')
        g.add_argument('--output_root',
                       help='Instead of --output_dir, for scheduled rebuilds: write to '
                            '<output_root>/runs/<run_id>/, then, once the run verified itself, point '
                            '<output_root>/latest.json at it and prune old runs. Readers follow latest.json.')
        g.add_argument('--run_id', help='Run id under --output_root (default: UTC time, e.g. 20261125T041500Z).')
        g.add_argument('--keep_runs', type=int, default=5,
                       help='With --output_root: complete runs to keep, the new one included (default 5).')
        g.add_argument('--max_bad_fraction', type=float, default=0.05,
                       help='Fail the run when more than this fraction of a split\'s records, or of a CSV\'s '
                            'lines, is rejected (default 0.05). Rejected inputs are always written to '
                            'dead_letters/.')
        a = parser.add_argument_group('New audio (VGGish embeddings computed here)')
        a.add_argument('--audio', default=None,
                       help='Comma-separated audio folders, globs or files (local or gs://) named '
                            '<YTID>_<start>_<end>.<ext> (wav, flac, mp3, m4a/aac, ogg/opus, webm). Each clip is '
                            'embedded with VGGish, labelled from the segment CSVs and added to clips/ with '
                            'embedding_source="computed".')
        a.add_argument('--audio_manifest', default=None,
                       help='CSV of audio files with columns path,YTID,start,end (instead of or besides --audio).')
        a.add_argument('--vggish_checkpoint', default=None,
                       help='vggish_model.ckpt: local path, gs:// or https:// (default: the official URL; '
                            'downloaded once to ~/.cache/audioset-beam/vggish and checked by sha256).')
        a.add_argument('--vggish_pca_params', default=None,
                       help='vggish_pca_params.npz: local path, gs:// or https:// (default: the official URL).')
        a.add_argument('--embed_batch_clips', type=int, default=16,
                       help='Clips per RunInference batch (10 s clip = 10 examples; default 16).')
        a.add_argument('--keep_unlabelled', action='store_true',
                       help='Keep clips that have no segments CSV row (split=unlabelled/label=unlabelled) '
                            'instead of dead-lettering them.')
        a.add_argument('--reuse_embeddings_from', default=None,
                       help='An earlier run folder whose computed_embeddings/ are reused when the segment, the '
                            'audio bytes and the model are the same (default with --output_root: the run '
                            'latest.json points at).')
        g.add_argument('--validate_only', action='store_true',
                       help='Check everything that can be checked without running: flags parse, inputs are '
                            'listed and read (ontology, class index), and the graph constructs for the chosen '
                            'runner (e.g. DataflowRunner) without submitting. Prints the plan as JSON.')
        g.add_argument('--group_mb', type=float, default=96.0,
                       help='Shard bytes read, parsed and spilled by one worker call (default 96 MB): '
                            'larger means bigger batches and fewer spill files, smaller means more parallelism.')
        g.add_argument('--max_rows_per_file', type=int, default=250_000,
                       help='Rows per Parquet file of a partition before a new file starts (default 250000).')
        g.add_argument('--row_group_rows', type=int, default=50_000,
                       help='Rows per Parquet row group (default 50000, about 64 MB uncompressed).')
