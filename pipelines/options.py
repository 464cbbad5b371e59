"""Every flag of the build, declared once, and their checks: strict parsing (an unknown flag is an error,
not a warning) and the validation of every input and output path before anything runs or is deleted.
Transforms never see these objects, only plain values."""
from __future__ import annotations

import argparse
import glob
import math
import os
import pathlib

from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions, StandardOptions,
                                                  _BeamArgumentParser)

from pipelines import args
from pipelines.errors import EXIT_CODES_HELP, InputError, UsageError

SAMPLE_DIR = pathlib.Path(__file__).resolve().parents[1] / 'sample_data'


class BuildOptions(PipelineOptions):
    """Flags of ``python -m pipelines.build_dataset``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group('AudioSet build')
        g.add_argument('--features_dir', default=str(SAMPLE_DIR / 'features'),
                       help='Released embeddings, in any form the release comes in: the tarball '
                            'features.tar.gz (local, gs:// or https://, read as a stream, never unpacked), the '
                            'folder tar unpacks it into (holding audioset_v1_embeddings/), '
                            'audioset_v1_embeddings/ itself or any folder with bal_train/, eval/, unbal_train/ '
                            'of *.tfrecord shards (local or gs://), or one split folder (only that split). '
                            'Default: the bundled sample.')
        g.add_argument('--release', default=None,
                       help='A folder (local or gs://) holding the release as python -m pipelines.fetch_release '
                            'leaves it: features.tar.gz or audioset_v1_embeddings/, the segment CSVs, '
                            'class_labels_indices.csv, ontology.json and, when present, qa_true_counts.csv '
                            '(--label_quality) and the strong-label TSVs (--strong_labels). Fills in those '
                            'flags; any of them given explicitly wins.')
        g.add_argument('--segments_dir', default=str(SAMPLE_DIR / 'segments'),
                       help='Folder with any of eval_segments.csv, balanced_train_segments.csv, '
                            'unbalanced_train_segments.csv. It must exist, but may be empty: then a split is '
                            'labelled from its records\' own label indices. Default: the bundled sample.')
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
        g.add_argument('--run_id', help='Run id under --output_root (default: UTC start time and a random suffix, '
                                        'e.g. 20261125T041500.123456Z-1a2b3c; runs are ordered by id).')
        g.add_argument('--keep_runs', type=int, default=5,
                       help='With --output_root: complete runs to keep, the new one included (default 5).')
        g.add_argument('--max_bad_fraction', type=float, default=0.05,
                       help='Fail the run when more than this fraction of a split\'s records, or of a CSV\'s '
                            'or an AudioSet Strong file\'s lines, is rejected (default 0.05). Rejected inputs are '
                            'always written to dead_letters/.')
        g.add_argument('--label_quality', default=None,
                       help='qa_true_counts.csv (label_id,num_rated,num_true; local, gs:// or https://): '
                            'classes.parquet gains num_rated, num_true and quality = num_true / num_rated.')
        g.add_argument('--strong_labels', default=None,
                       help='Folder (local, gs:// or https://; each file is probed by name) with any of '
                            'audioset_train_strong.tsv, audioset_eval_strong.tsv, '
                            'audioset_eval_strong_framed_posneg.tsv and mid_to_display_name.tsv: clips gain '
                            'strong_events and per-frame labels. A bad line (MIDs in neither the ontology nor '
                            'mid_to_display_name.tsv included) is a dead letter; more than --max_bad_fraction of '
                            'a file\'s lines rejected, or a file with no usable line, fails the run.')
        a = parser.add_argument_group('New audio (VGGish embeddings computed here)')
        a.add_argument('--audio', nargs='+', action='extend', default=None, metavar='PATH',
                       help='Audio folders, globs or files (local or gs://; several after one --audio, repeated '
                            '--audio, or comma-separated) named <YTID>_<start>_<end>.<ext> (wav, flac, mp3, '
                            'm4a/aac, ogg/opus, webm); a name starting with "-" is fine. Each clip is '
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
        g.add_argument('--http_timeout', type=_positive_seconds, default=60.0,
                       help='An https:// tarball: seconds without data before the connection is resumed with a '
                            'Range request (5 resumes in a row at most; default 60).')
        g.add_argument('--http_deadline', type=_positive_seconds, default=6 * 3600.0,
                       help='An https:// tarball: seconds for its whole transfer, resumes included (default 21600, '
                            '6 h); a slower transfer fails the run.')
        g.add_argument('--validate_only', action='store_true',
                       help='Check everything that can be checked without running: flags parse, inputs are '
                            'listed and read (ontology, class index), and the graph constructs for the chosen '
                            'runner (e.g. DataflowRunner) without submitting. Prints the plan as JSON.')
        g.add_argument('--group_mb', type=float, default=64.0,
                       help='Shard bytes read, parsed and spilled by one worker call (default 64 MB): '
                            'larger means bigger batches and fewer spill files, smaller means more parallelism.')
        g.add_argument('--max_rows_per_file', type=int, default=250_000,
                       help='Rows per Parquet file of a partition before a new file starts (default 250000).')
        g.add_argument('--embedding_compression', default='none', choices=['none', 'zstd', 'lz4', 'snappy'],
                       help='Parquet compression of the embedding column (default none: quantized embeddings '
                            'shrink 8%% with zstd, at several times the write and read time). Every other column '
                            'is zstd.')
        g.add_argument('--row_group_rows', type=int, default=50_000,
                       help='Rows per Parquet row group, at most (default 50000, about 90 MB uncompressed; a writer '
                            'holding more than 256 MB of pending rows writes its largest pending rows early).')
        g.add_argument('--verbose', action='store_true',
                       help='With an expected error (bad flag or input, failed checks), print its traceback too.')


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f'{value!r}: a positive number of seconds')
    return seconds


HELP_HINT = ('See python -m pipelines.build_dataset --help; Beam\'s pipeline options (--runner, --project, '
             '--temp_location, ...) are accepted too.')


class _StrictBeamParser(_BeamArgumentParser):
    """Beam's own parser class (it knows ValueProvider arguments), raising UsageError instead of exiting."""

    def error(self, message):
        raise UsageError(message)


def _option_classes() -> list[type]:
    """Every PipelineOptions subclass defined so far, subclasses of subclasses included."""
    found, todo = [], list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls not in found:
            found.append(cls)
            todo += cls.__subclasses__()
    return found


def all_flags_parser() -> argparse.ArgumentParser:
    """A parser of every flag a build accepts: the build's and every Beam pipeline option's, the set Beam
    itself parses with (``PipelineOptions.get_all_options``), which only warns about the rest."""
    parser = _StrictBeamParser(allow_abbrev=False, add_help=False, conflict_handler='resolve')
    for cls in _option_classes():
        if '_add_argparse_args' in cls.__dict__:
            cls._add_argparse_args(parser)
    return parser


def help_parser() -> argparse.ArgumentParser:
    """The build's flags, for --help."""
    parser = argparse.ArgumentParser(
        prog='python -m pipelines.build_dataset', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Build AudioSet as hive-partitioned Parquet from the released embedding shards (and '
                    'optionally your own audio). Beam\'s pipeline options (--runner, --direct_num_workers, '
                    '--project, --region, --temp_location, ...) are accepted besides these.',
        epilog=EXIT_CODES_HELP)
    BuildOptions._add_argparse_args(parser)
    return parser


def check_flags(argv: list[str]) -> list[str]:
    """``argv`` with values that start with '-' attached to their flags (``--audio=-0BIy....flac``);
    raises UsageError for a flag that neither the build nor Beam knows, or a value that does not parse."""
    parser = all_flags_parser()
    argv = args.normalize_argv(list(argv), parser)
    args.check_flags(argv, parser, HELP_HINT)
    return argv


def audio_specs(values) -> list[str]:
    """--audio values as a flat list: each value may itself be comma-separated. A --audio given with
    nothing but empty values is a UsageError (it would otherwise be silently no audio)."""
    if isinstance(values, str):
        values = [values]
    specs = [p.strip() for v in values or () for p in v.split(',') if p.strip()]
    if values and not specs:
        raise UsageError(f'--audio: no path in {values!r}')
    return specs


def is_dataflow(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner is not None else ''
    return 'dataflow' in name.lower()


# Inputs the workers read, so on Dataflow they must be on gs://. The class index and ontology are read when
# the job is built (on the submitting machine, or the Flex Template launcher with its bundled copies) and
# travel inside the job, so local files are fine for them.
WORKER_INPUTS = ('features_dir', 'segments_dir', 'audio', 'audio_manifest', 'reuse_embeddings_from',
                 'strong_labels')
WEIGHT_INPUTS = ('vggish_checkpoint', 'vggish_pca_params')
# Inputs that may also be http(s):// URLs (read as a stream; workers on Dataflow can fetch them too).
URL_INPUTS = ('features_dir', 'label_quality', 'strong_labels') + WEIGHT_INPUTS


def _schemes(flag: str) -> tuple[str, ...]:
    return ('gs', 'http', 'https') if flag.lstrip('-') in URL_INPUTS else ('gs',)


def _path_flags(opts: BuildOptions) -> list[tuple[str, str]]:
    """(flag, value) of every path the build will read or write, in flag order; the audio-only ones only
    with audio."""
    with_audio = bool(opts.audio or opts.audio_manifest)
    out = [(f'--{name}', getattr(opts, name)) for name in ('features_dir', 'segments_dir', 'class_index',
                                                           'ontology', 'output_dir', 'output_root')]
    out += [('--audio', a) for a in audio_specs(opts.audio)]
    names = ('label_quality', 'strong_labels', 'audio_manifest', 'reuse_embeddings_from') + \
        (WEIGHT_INPUTS if with_audio else ())
    out += [(f'--{name}', getattr(opts, name)) for name in names]
    return [(flag, value) for flag, value in out if value]


def _defaults() -> dict[str, str]:
    return {a.dest: a.default for a in help_parser()._actions if isinstance(a.default, str)}


def _dataflow_problems(options: PipelineOptions, opts: BuildOptions, paths: list[tuple[str, str]]) -> list[str]:
    defaults = _defaults()
    problems = []
    for flag, value in paths:
        name = flag[2:]
        if name in WORKER_INPUTS and not args.is_remote(value):
            why = ' (the default, the bundled sample)' if defaults.get(name) == value else ''
            where = 'a gs:// path' if name not in URL_INPUTS else 'a gs:// or https:// path'
            problems.append(f'{flag} {value}{why}: Dataflow workers cannot read local files; give {where}')
        elif name in WEIGHT_INPUTS and not value.startswith(('gs://', 'https://')):
            problems.append(f'{flag} {value}: Dataflow workers cannot read local files; give gs:// or https://')
        elif name in ('output_dir', 'output_root') and not value.startswith('gs://'):
            problems.append(f'{flag} {value}: Dataflow workers write the dataset; give a gs:// path')
    cloud = options.view_as(GoogleCloudOptions)
    if not (cloud.temp_location or cloud.staging_location):
        problems.append('--temp_location: needed under DataflowRunner (e.g. gs://BUCKET/tmp); without it Beam '
                        'would look for or create a default bucket over the network')
    for flag in ('temp_location', 'staging_location'):
        value = getattr(cloud, flag)
        if value and not value.startswith('gs://'):
            problems.append(f'--{flag} {value}: must be a gs:// path under DataflowRunner')
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    # Beam's own checks of project and job name; offline (the runner would also check the buckets over
    # the network, and create a default one when they are bad).
    problems += PipelineOptionsValidator(options, None).validate_cloud_options(cloud)
    return problems


def _exists_problem(path: str, want: str) -> str | None:
    """Why a local input is not there as a ``want`` ('file' or 'folder'), or None."""
    if not os.path.exists(path):
        return f'no such {want}'
    if want == 'folder' and not os.path.isdir(path):
        return 'is a file, not a folder'
    if want == 'file' and os.path.isdir(path):
        return 'is a folder, not a file'
    return None


def _match_any(pattern: str) -> bool:
    if args.is_remote(pattern) and not any(c in pattern for c in '*?['):
        # One request for one name, bounded and without retries (Beam's match retries for minutes).
        from transforms import fileio
        try:
            fileio.size_of(pattern)
            return True
        except FileNotFoundError:
            return False
    from apache_beam.io.filesystems import FileSystems
    return bool(FileSystems.match([pattern], limits=[1])[0].metadata_list)


def _strong_files_answer(folder: str) -> bool:
    """Whether the server answers for the AudioSet Strong names in ``folder`` (one bounded request each; HTTP
    cannot list). Which files are there is the build's to judge: none there is its own error."""
    from transforms.strong import find_strong_files
    find_strong_files(folder)
    return True


def _remote_problem(flag: str, value: str, check) -> str | None:
    """``check(value)`` -> True when there; a failure to ask (denied, timed out) is a problem too."""
    try:
        return None if check(value) else f'{flag} {value}: no such object'
    except Exception as e:  # noqa: BLE001 -- each client raises its own: say what it said, in one line
        return f'{flag} {value}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ""})'


def _near_miss(path: str) -> str:
    """'; did you mean X?' for a missing local path whose parent has a similar name, else ''."""
    import difflib
    parent, name = os.path.split(os.path.abspath(path))
    try:
        names = os.listdir(parent)
    except OSError:
        return ''
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f'; did you mean {os.path.join(parent, close[0])}?' if close else ''


def _features_problem(f: str, with_audio: bool, flag: str = '--features_dir') -> str | None:
    """Why --features_dir is none of the accepted forms (see transforms.read.resolve_features), or None.
    ``flag``: the flag the user gave it with (``--release`` fills --features_dir in)."""
    from transforms.read import FeaturesError, resolve_features
    try:
        resolve_features(f)
    except FileNotFoundError as e:
        what = e.strerror or 'not found'
        return f'{flag} {e.filename or f}: {what}' + ('' if args.is_remote(f) else _near_miss(f))
    except FeaturesError as e:
        if with_audio and e.empty:
            return None
        return f'{flag} {e}' + (' No --audio or --audio_manifest was given either.' if e.empty else '')
    except Exception as e:  # noqa: BLE001 -- remote: denied, unreachable; say so in one line
        return f'{flag} {f}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ""})'
    return None


def _input_problems(opts: BuildOptions, with_audio: bool) -> list[str]:
    """Missing or mistyped inputs (local: os; gs://: a listing of at most one object)."""
    from audioset_beam import layout
    problems = []
    f = opts.features_dir
    flag = '--release' if opts.release and '--features_dir' not in given_flags(opts) else '--features_dir'
    if f and (why := _features_problem(f, with_audio, flag)):
        problems.append(why)
    s = opts.segments_dir
    if not args.is_remote(s) and (why := _exists_problem(s, 'folder')):
        hint = (' (give the folder that holds eval_segments.csv, ...)' if os.path.isfile(s) else
                ' (an existing empty folder is fine: splits are then labelled from the records\' label indices)')
        problems.append(f'--segments_dir {s}: {why}{hint}')
    for name in ('class_index', 'ontology', 'audio_manifest') + (WEIGHT_INPUTS if with_audio else ()):
        value = getattr(opts, name)
        if value and not args.is_remote(value) and (why := _exists_problem(value, 'file')):
            problems.append(f'--{name} {value}: {why}')
        elif value and args.is_remote(value) and name in ('class_index', 'ontology', 'audio_manifest') \
                and (why := _remote_problem(f'--{name}', value, _match_any)):
            problems.append(why)
    q = opts.label_quality
    if q and not args.is_remote(q) and (why := _exists_problem(q, 'file')):
        problems.append(f'--label_quality {q}: {why}{_near_miss(q) if why.startswith("no such") else ""}')
    elif q and args.is_remote(q) and (why := _remote_problem('--label_quality', q, _match_any)):
        problems.append(why)
    st = opts.strong_labels
    if st and not args.is_remote(st) and (why := _exists_problem(st, 'folder')):
        problems.append(f'--strong_labels {st}: {why} (give the folder holding audioset_train_strong.tsv, ...)')
    elif st and args.is_remote(st) and (why := _remote_problem('--strong_labels', st, _strong_files_answer)):
        problems.append(why)
    for spec in audio_specs(opts.audio):
        if any(c in spec for c in '*?['):
            found = (glob.glob(spec, recursive=True) if not args.is_remote(spec) else _match_any(spec))
            if not found:
                problems.append(f'--audio {spec}: the pattern matches no files')
        elif not args.is_remote(spec):
            if not os.path.exists(spec):
                problems.append(f'--audio {spec}: no such file or folder')
        elif not (_match_any(spec) or _match_any(layout.join(spec, '**'))):
            problems.append(f'--audio {spec}: no such object or folder')
        if not args.is_remote(spec) and os.path.isdir(spec):
            from transforms.embed import AUDIO_EXTENSIONS
            if not any(n.lower().endswith(AUDIO_EXTENSIONS) for _, _, names in os.walk(spec) for n in names):
                problems.append(f'--audio {spec}: no audio files ({", ".join(AUDIO_EXTENSIONS)}) in this folder')
    r = opts.reuse_embeddings_from
    if r and not args.is_remote(r) and (why := _exists_problem(r, 'folder')):
        problems.append(f'--reuse_embeddings_from {r}: {why}')
    return problems


def _paragraph(problems: list[str]) -> str:
    return problems[0] if len(problems) == 1 else f'{len(problems)} problems:\n' + '\n'.join(problems)


def given_flags(options: PipelineOptions) -> set[str]:
    """The names (``--run_id``) of the flags given on the command line, whatever their values: a default,
    or a value ``--release`` filled in, is not given."""
    return {a.split('=', 1)[0] for a in options._flags or () if a.startswith('--')}  # noqa: SLF001 -- Beam's argv


_AUDIO = '--audio or --audio_manifest'
_HTTPS = 'an http(s):// --features_dir (or --release)'
# Flags that do something only beside another: flag -> (what it needs, what it would have done).
NEEDS = {
    '--run_id': ('--output_root', 'it names the run folder under --output_root; --output_dir is written in place'),
    '--keep_runs': ('--output_root', 'it prunes old runs under --output_root; --output_dir has no runs'),
    **{f'--{name}': (_AUDIO, 'it is for embedding new audio with VGGish, and no audio is given')
       for name in ('vggish_checkpoint', 'vggish_pca_params', 'embed_batch_clips', 'keep_unlabelled',
                    'reuse_embeddings_from')},
    **{f'--{name}': (_HTTPS, 'it bounds the download of an https:// tarball, and the features are not one')
       for name in ('http_timeout', 'http_deadline')},
}


def _without_effect(options: PipelineOptions, opts: BuildOptions) -> list[str]:
    """A flag given explicitly where it does nothing (its default never counts): a usage error, so that a
    mistyped or forgotten companion flag does not pass as a run that did what was asked."""
    has = {'--output_root': opts.output_root is not None, _AUDIO: bool(opts.audio or opts.audio_manifest),
           _HTTPS: str(opts.features_dir or '').startswith(('http://', 'https://'))}
    return [f'{flag}: has no effect without {needs} ({why})' for flag, (needs, why) in NEEDS.items()
            if flag in given_flags(options) and not has[needs]]


def _check_values(options: PipelineOptions, opts: BuildOptions) -> None:
    """Flag values no later check would catch cleanly: empty paths (``--output_dir ''`` would write to
    /clips), non-finite numbers, a runner Beam does not know, a flag that would have no effect."""
    problems = [f'--{name}: empty path' for name in ('features_dir', 'segments_dir', 'class_index', 'ontology',
                                                     'output_dir', 'output_root', 'audio_manifest',
                                                     'reuse_embeddings_from', *WEIGHT_INPUTS)
                if getattr(opts, name) is not None and not str(getattr(opts, name)).strip()]
    problems += [f'--{name} {getattr(opts, name)}: not a finite number' for name in ('group_mb', 'max_bad_fraction')
                 if not math.isfinite(getattr(opts, name))]
    runner = options.view_as(StandardOptions).runner
    if isinstance(runner, str):
        from apache_beam.runners.runner import create_runner
        try:
            create_runner(runner)
        except (ValueError, ImportError) as e:
            problems.append(f'--runner {runner}: {e}')
    problems += _without_effect(options, opts)
    if problems:
        raise UsageError(_paragraph(problems))


def _links_below(path: str) -> list[str]:
    """``path`` if it is a symbolic link, else every link below it (never followed), in walk order."""
    if os.path.islink(path):
        return [path]
    found = []
    for folder, dirs, files in os.walk(path):   # followlinks=False: a linked folder is listed, not entered
        found += [os.path.join(folder, n) for n in sorted(dirs + files) if os.path.islink(os.path.join(folder, n))]
    return found


def _output_link_problems(opts: BuildOptions) -> list[str]:
    """Symbolic links where the build writes, lists or deletes: its folders and files in the output, and
    --output_root's runs/ and the runs in it. Writing through one, or deleting stale part files below one,
    would reach files outside the output. The output folder itself may be a link."""
    from audioset_beam import layout
    from transforms.core import runs
    from transforms.report import REPORT_FILE
    flag, top = ('--output_dir', opts.output_dir) if opts.output_root is None else ('--output_root', opts.output_root)
    if args.is_remote(top):
        return []
    owned = (layout.CLIPS_DIR, layout.DEAD_LETTERS_DIR, layout.MISSING_FEATURES_DIR, layout.MISSING_STRONG_DIR,
             layout.COMPUTED_DIR, layout.SPILL_DIR, layout.CLASSES_FILE, layout.MANIFEST_FILE,
             layout.MANIFEST_FILE + '.tmp', REPORT_FILE)
    links = []
    if os.path.isdir(opts.output_dir):
        links += [link for name in owned for link in _links_below(os.path.join(opts.output_dir, name))]
    if opts.output_root is not None:
        runs_dir = os.path.join(opts.output_root, runs.RUNS_DIR)
        if os.path.islink(runs_dir):
            links.append(runs_dir)
        elif os.path.isdir(runs_dir):
            links += [p for p in (os.path.join(runs_dir, n) for n in sorted(os.listdir(runs_dir))) if os.path.islink(p)]
    if not links:
        return []
    shown = ', '.join(f'{p} (to {os.readlink(p)})' for p in links[:3]) + (
        f' and {len(links) - 3} more' if len(links) > 3 else '')
    return [f'{flag} {top}: a symbolic link where the build writes, lists and deletes files: {shown}. The build '
            'never follows a link out of its output: remove the link (rm removes a link, not its target), or '
            f'choose another {flag}']


def validate(options: PipelineOptions) -> None:
    """Checks every path flag before anything runs or is deleted, cheapest first: gs:// names (offline),
    outputs, DataflowRunner's needs, that Cloud Storage answers at all (bounded to seconds), that inputs
    exist, and that the class index and ontology load and agree. Raises UsageError (flags) or InputError
    (inputs), naming each flag and path at fault."""
    opts = options.view_as(BuildOptions)
    _check_values(options, opts)
    paths = _path_flags(opts)
    beam_paths = [(f'--{k}', v) for k, v in sorted(options.get_all_options().items())
                  if isinstance(v, str) and v.startswith('gs://') and f'--{k}' not in dict(paths)]
    problems = [f'{flag} {value}: {why}' for flag, value in paths + beam_paths
                if (why := args.gcs_path_problem(value, _schemes(flag)))]
    for flag in ('--output_dir', '--output_root'):
        value = getattr(opts, flag[2:])
        if value and not args.is_remote(value) and (why := args.output_dir_problem(value)):
            problems.append(f'{flag} {value}: {why}')
    problems += _output_link_problems(opts)
    if is_dataflow(options):
        problems += _dataflow_problems(options, opts, paths)
    if problems:
        raise UsageError(_paragraph(problems))
    remote = [(flag, value) for flag, value in paths if value.startswith('gs://')]
    if remote:
        args.check_gcs_reachable(*remote[0])
    problems = _input_problems(opts, bool(opts.audio or opts.audio_manifest))
    if problems:
        raise InputError(_paragraph(problems))
    from transforms import fileio
    args.load_vocabulary(opts.class_index, opts.ontology, fileio.read_bytes)


def apply_release(opts: BuildOptions, argv: list[str]) -> dict[str, str]:
    """Fills the flags --release stands for (``transforms.core.release.release_flags``) unless they were
    given explicitly in ``argv``; returns what it filled. A release folder that is not there is an
    InputError naming --release."""
    if not opts.release:
        return {}
    from transforms import fileio
    from transforms.core import release
    r = opts.release.rstrip('/') or opts.release
    if (why := args.gcs_path_problem(r, ('gs', 'http', 'https'))):
        raise UsageError(f'--release {r}: {why}')
    if not args.is_remote(r):
        if (why := _exists_problem(r, 'folder')):
            raise InputError(f'--release {r}: {why}{_near_miss(r) if why.startswith("no such") else ""} '
                             '(python -m pipelines.fetch_release --dest DIR makes one)')
        exists = os.path.isfile
    else:
        def exists(path: str) -> bool:
            try:
                fileio.size_of(path)
                return True
            except FileNotFoundError:
                return False
    given = {a.split('=', 1)[0] for a in argv if a.startswith('--')}
    filled = {}
    for name, value in release.release_flags(r, exists).items():
        if f'--{name}' not in given:
            setattr(opts, name, value)
            filled[name] = value
    return filled
