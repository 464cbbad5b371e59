"""Build AudioSet as hive-partitioned Parquet from the released embedding shards.

    python -m pipelines.build_dataset --output_dir out            # the bundled sample, DirectRunner
    python -m pipelines.build_dataset --output_root out_root      # a rebuild: runs/<id>/ + latest.json
    python -m pipelines.build_dataset --features_dir gs://.../features --segments_dir gs://.../csv \\
        --output_dir gs://bucket/audioset --runner DataflowRunner ...

Graph (every failure branches to one dead-letter sink):

    shard groups -> ReadShards -> LabelSegments ---------+-> WriteClips -------------+
    audio files  -> EmbedAudio (RunInference) -----------+                           |
    segment CSVs -> ReadSegmentCsvs (joins both) -> keys -> WriteMissingFeatures ----+-> WriteManifest
                    dead letters (all stages) -> WriteDeadLetters -------------------+   (-> latest.json)
                    stats (all stages) -> MergeStats -> WriteClassTable -------------+
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions, SetupOptions, StandardOptions,
                                                  TestOptions)

from audioset_beam import layout
from pipelines import args
from pipelines.console import INTERRUPTED, quiet_worker_tracebacks, run_cli, setup_logging
from pipelines.errors import EXIT_CODES_HELP, EXIT_NO_SPACE, EXIT_OK, InputError, UserError, no_space, no_space_message
from pipelines.options import BuildOptions, apply_release, audio_specs, check_flags, help_parser, validate
from transforms import fileio
from transforms.check import CheckSegments
from transforms.core import runs
from transforms.core.ontology import Vocabulary
from transforms.embed import EmbedAudio, EmbedSettings, plan_audio
from transforms.label import LabelSegments
from transforms.publish import claim_run
from transforms.read import plan_features, read_features
from transforms.report import REPORT_FILE
from transforms.segments import ReadSegmentCsvs
from transforms.sinks import MergeStats, Publish, WriteClassTable, WriteDeadLetters, WriteManifest
from transforms.strong import FILES as STRONG_FILES
from transforms.strong import ReadStrongLabels, find_strong_files
from transforms.write import WriteClips

log = logging.getLogger('pipelines.build_dataset')


def load_vocabulary(class_index: str, ontology: str) -> Vocabulary:
    """Reads and validates the class index and ontology (small; read once, shipped with the graph).
    Raises InputError naming the flag, file and problem."""
    return args.load_vocabulary(class_index, ontology, fileio.read_bytes)


def find_segment_csvs(segments_dir: str) -> dict[str, str]:
    """split -> path of each released segment CSV present in ``segments_dir``."""
    found = {}
    for name, split in layout.SEGMENT_CSVS.items():
        path = layout.join(segments_dir, name)
        if fileio.exists(path):
            found[split] = path
    return found


def versions() -> dict:
    import google.protobuf
    import numpy
    import pyarrow
    return {'python': platform.python_version(), 'apache_beam': beam.__version__, 'pyarrow': pyarrow.__version__,
            'numpy': numpy.__version__, 'protobuf': google.protobuf.__version__}


def pipeline(p: beam.Pipeline, opts: BuildOptions) -> dict:
    """Adds the build to ``p``; returns a summary of the planned inputs (also recorded in the manifest)."""
    vocab = load_vocabulary(opts.class_index, opts.ontology)
    quality = args.load_label_quality(opts.label_quality, vocab, fileio.read_bytes) if opts.label_quality else None
    features, groups, shard_inputs = plan_features(opts.features_dir, int(opts.group_mb * (1 << 20)))
    csvs = find_segment_csvs(opts.segments_dir)
    strong_files = find_strong_files(opts.strong_labels) if opts.strong_labels else {}
    if opts.strong_labels and not ({'train', 'eval', 'framed'} & set(strong_files)):
        wanted = ', '.join(STRONG_FILES[r] for r in ('train', 'eval', 'framed'))
        raise InputError(f'--strong_labels {opts.strong_labels}: none of {wanted} is there (the AudioSet '
                         'Strong files, https://research.google.com/audioset/download_strong.html)')
    audio_specs = [a.strip() for spec in ([opts.audio] if isinstance(opts.audio, str) else opts.audio or [])
                   for a in spec.split(',') if a.strip()]
    audio_items, audio_dead = plan_audio(audio_specs, opts.audio_manifest) \
        if audio_specs or opts.audio_manifest else ([], [])
    if not groups and not (features and features.tarball) and not (audio_items or audio_dead):
        raise InputError(f'--features_dir {opts.features_dir}: no shards found in bal_train/, eval/ or unbal_train/ '
                         '(expected the release layout, e.g. <features_dir>/eval/*.tfrecord), and no --audio')
    out = opts.output_dir
    run_info = {
        'format': 'audioset-beam/1',
        'inputs': {
            'features_dir': opts.features_dir, 'shards': shard_inputs, 'shard_groups': len(groups),
            'features': {'form': features.form, 'tarball': features.tarball, 'root': features.root,
                         'folders': list(features.folders)} if features else None,
            'segment_csvs': csvs, 'class_index': opts.class_index, 'ontology': opts.ontology,
            'label_quality': ({'path': opts.label_quality, 'classes': len(quality.counts),
                               'classes_assessed': sum(1 for r, _ in quality.counts.values() if r)}
                              if quality else None),
            'strong_labels': ({'dir': opts.strong_labels, 'files': strong_files} if opts.strong_labels else None),
            'labels_from': {split: ('csv' if split in csvs else 'shard label indices (no segments CSV)')
                            for split in (shard_inputs if not (features and features.tarball)
                                          else layout.FEATURE_FOLDERS.values())},
        },
        'options': {k: v for k, v in opts.get_all_options(drop_default=False).items()
                    if k in {a.dest for a in _build_flags()}},
        'versions': versions(),
    }
    embed = None
    if audio_items or audio_dead:
        settings = embed_settings(opts)
        run_info['inputs']['audio'] = {'files': len(audio_items) + len(audio_dead), 'specs': audio_specs,
                                       'manifest': opts.audio_manifest,
                                       'vggish_checkpoint': opts.vggish_checkpoint or 'official',
                                       'vggish_pca_params': opts.vggish_pca_params or 'official',
                                       'model_fingerprint': settings.fingerprint,
                                       'reused_from': settings.reuse_from}
    spill_dir = layout.join(out, layout.SPILL_DIR)
    csv_out = (p | 'ListSegmentCsvs' >> beam.Create(sorted(csvs.items()))
                 | 'ReadSegmentCsvs' >> ReadSegmentCsvs(vocab, spill_dir))
    strong = (p | 'ReadStrongLabels' >> ReadStrongLabels(strong_files, spill_dir, vocab.known_mids)) if strong_files else None
    strong_index = strong.index if strong else None
    read = read_features(p, features, groups, int(opts.group_mb * (1 << 20)), spill_dir,
                         {'timeout': opts.http_timeout, 'deadline_s': opts.http_deadline})
    labelled = read.records | 'LabelSegments' >> LabelSegments(vocab, csv_out.index, strong_index)
    segments, keys = [labelled.segments], [labelled.keys]
    dead_letters = [read.dead_letters, labelled.dead_letters, csv_out.dead_letters]
    stat_parts = [read.stats, labelled.stats, csv_out.stats]
    if strong:
        dead_letters.append(strong.dead_letters)
        stat_parts.append(strong.stats)
    written = []
    if audio_items or audio_dead:
        embed = (p | 'ListAudio' >> beam.Create(audio_items)
                   | 'EmbedAudio' >> EmbedAudio(vocab, csv_out.index, settings, out, strong_index))
        segments.append(embed.segments)
        keys.append(embed.keys)
        dead_letters += [embed.dead_letters, p | 'AudioDiscoveryDeadLetters' >> beam.Create(audio_dead)]
        stat_parts += [embed.stats,
                       p | 'AudioCount' >> beam.Create([{'audio': {'files_in': len(audio_items) + len(audio_dead)}}])]
        written.append(embed.files)
    checked = (tuple(keys) | 'FlattenKeys' >> beam.Flatten()
               | 'CheckSegments' >> CheckSegments(vocab, csv_out.index, out, strong_index))
    clips = ((tuple(segments) | 'FlattenSegments' >> beam.Flatten(), checked.plan)
             | 'WriteClips' >> WriteClips(out, opts.max_rows_per_file, opts.row_group_rows,
                                          opts.embedding_compression))
    dead = (tuple(dead_letters + [checked.dead_letters])
            | 'FlattenDeadLetters' >> beam.Flatten()
            | 'WriteDeadLetters' >> WriteDeadLetters(out))
    run_stats = (tuple(stat_parts + [checked.stats, clips.stats, dead.stats])
                 | 'MergeStats' >> MergeStats())
    class_files = run_stats | 'WriteClassTable' >> WriteClassTable(out, vocab, quality)
    files = ((clips.files, checked.files, dead.files, class_files, *written)
             | 'FlattenWrittenFiles' >> beam.Flatten())
    publish = None
    if opts.output_root is not None:
        run_info['run_id'] = opts.run_id
        publish = Publish(opts.output_root, opts.run_id, opts.keep_runs)
    p | 'WriteManifest' >> WriteManifest(out, opts.max_bad_fraction, run_info, run_stats, files, publish)
    return run_info


def embed_settings(opts: BuildOptions) -> EmbedSettings:
    """Fetches the VGGish weights once here (a clear error when they cannot be had), fingerprints them,
    and finds the earlier run whose computed embeddings may be reused."""
    from transforms.core.vggish import fingerprint
    from transforms.vggish_weights import resolve_vggish_weights
    files = resolve_vggish_weights(opts.vggish_checkpoint, opts.vggish_pca_params)
    reuse = opts.reuse_embeddings_from
    if reuse is None and opts.output_root is not None:
        latest = layout.join(opts.output_root, runs.LATEST_FILE)
        if fileio.exists(latest):
            reuse = json.loads(fileio.read_bytes(latest))['run_dir']
    return EmbedSettings(opts.vggish_checkpoint, opts.vggish_pca_params,
                         fingerprint(files.checkpoint, files.pca_params), opts.embed_batch_clips,
                         opts.keep_unlabelled, reuse)


def _build_flags():
    import argparse
    parser = argparse.ArgumentParser()
    BuildOptions._add_argparse_args(parser)
    return parser._actions


def parse(argv: list[str] | None) -> PipelineOptions:
    """Parses and validates flags and inputs, before anything is written or deleted. A flag that neither
    the build nor Beam knows, or a missing or malformed input, raises UserError naming it."""
    options = PipelineOptions(check_flags(sys.argv[1:] if argv is None else argv))
    opts = options.view_as(BuildOptions)
    opts.audio = audio_specs(opts.audio)
    apply_release(opts, sys.argv[1:] if argv is None else argv)
    if (opts.output_dir is None) == (opts.output_root is None):
        raise SystemExit('error: give exactly one of --output_dir and --output_root (try --help)')
    if opts.output_root is not None:
        if opts.keep_runs < 1:
            raise SystemExit('error: --keep_runs must be at least 1')
        try:
            opts.run_id = runs.check_run_id(opts.run_id or runs.new_run_id())
        except ValueError as e:
            raise SystemExit(f'error: --run_id: {e}') from None
        opts.output_dir = layout.join(opts.output_root, runs.RUNS_DIR, opts.run_id)
    if not 0 <= opts.max_bad_fraction <= 1:
        raise SystemExit(f'error: --max_bad_fraction must be within [0, 1], got {opts.max_bad_fraction}')
    if opts.group_mb <= 0 or opts.max_rows_per_file < 1 or opts.row_group_rows < 1 or opts.embed_batch_clips < 1:
        raise SystemExit('error: --group_mb, --max_rows_per_file, --row_group_rows and --embed_batch_clips '
                         'must be positive')
    validate(options)
    options.view_as(SetupOptions).save_main_session = False
    use_all_cores(options, sys.argv[1:] if argv is None else argv)
    return options


def use_all_cores(options: PipelineOptions, argv: list[str]) -> None:
    """On DirectRunner, one worker process per core unless the flags say otherwise.

    Processes, not threads: with ``multi_threading``, Beam 2.77's in-memory data channel
    (``apache_beam/runners/worker/data_plane.py``, ``InMemoryDataChannel.input_elements``) rebuilds its
    shared input list without a lock while other worker threads append to it, so output chunks can be lost
    or a stream decoded from the middle of an element (``Unknown type tag``, ``UnicodeDecodeError``, or a
    decoder allocating gigabytes from a garbage length). Worker processes each have their own gRPC data
    channel. Explicit ``--direct_num_workers`` / ``--direct_running_mode`` still win.
    """
    runner = options.view_as(StandardOptions).runner
    if runner not in (None, 'DirectRunner', 'direct', 'Direct'):
        return
    if runner is None:  # said explicitly, so Beam does not log that it picked the default
        options.view_as(StandardOptions).runner = 'DirectRunner'
    direct = options.view_as(DirectOptions)
    given = {a.split('=', 1)[0].lstrip('-') for a in argv if a.startswith('--')}
    if 'direct_num_workers' not in given:
        direct.direct_num_workers = os.cpu_count() or 1
    if 'direct_running_mode' not in given and direct.direct_num_workers > 1:
        direct.direct_running_mode = 'multi_processing'


_WORKERS: set = set()   # DirectRunner's worker processes started by this process (subprocess.Popen)


class _RecordingSubprocess:
    """The ``subprocess`` module as Beam's ``local_job_service`` sees it: each worker it starts is recorded."""

    def __getattr__(self, name: str):
        import subprocess
        return getattr(subprocess, name)

    def Popen(self, *args, **kwargs):  # noqa: N802 -- stands in for subprocess.Popen
        import subprocess
        process = subprocess.Popen(*args, **kwargs)
        _WORKERS.difference_update([p for p in _WORKERS if p.poll() is not None])
        _WORKERS.add(process)
        return process


def workers_leave_ctrl_c_to_the_build() -> None:
    """DirectRunner's worker processes (``use_all_cores``) share the terminal's process group, so Ctrl-C
    reached every one of them: each printed a KeyboardInterrupt traceback, and Beam's threads here more about
    the workers gone. Beam starts each worker with ``sh -c '<python> -m ...sdk_worker_main'``
    (``local_job_service.SubprocessSdkWorker``); from here on that command starts with ``trap '' INT; exec``, so
    the worker ignores SIGINT (an ignored signal survives exec, and Python then installs no KeyboardInterrupt
    handler), and the process is recorded: ``ctrl_c_ends_workers`` ends it. Applied once; a Beam that starts
    its workers otherwise is left as it is."""
    try:
        from apache_beam.runners.portability import local_job_service
    except ImportError:
        return
    worker = getattr(local_job_service, 'SubprocessSdkWorker', None)
    if worker is None or getattr(worker.run, 'leaves_ctrl_c_to_the_build', False) or os.name != 'posix':
        return
    original = worker.run

    def run(self):
        command = getattr(self, '_worker_command_line', None)
        if isinstance(command, str):
            self._worker_command_line = f"trap '' INT; exec {command}"
        try:
            return original(self)
        except RuntimeError:   # "Worker subprocess exited with return code -15": ended by ctrl_c_ends_workers
            if not INTERRUPTED.is_set():
                raise

    run.leaves_ctrl_c_to_the_build = True
    local_job_service.subprocess = _RecordingSubprocess()
    worker.run = run


@contextlib.contextmanager
def ctrl_c_ends_workers():
    """While the pipeline runs, Ctrl-C (SIGINT) ends the worker processes (SIGTERM: they exit without a
    word) and then raises KeyboardInterrupt here, as Python's own handler would: ``run_cli`` prints ``error:
    interrupted`` and exits 130. What Beam's threads raise, or log, about the workers gone after that is not
    reported (``INTERRUPTED``). The workers ignore SIGINT themselves (``workers_leave_ctrl_c_to_the_build``):
    interrupted at once, mid-bundle, they printed tracebacks, and Beam's threads here reported them gone."""
    import signal
    import threading

    def on_ctrl_c(signum, frame):
        INTERRUPTED.set()
        for process in list(_WORKERS):
            if process.poll() is None:
                process.terminate()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:   # e.g. nohup, or a background job
        yield
        return
    workers_leave_ctrl_c_to_the_build()
    INTERRUPTED.clear()   # an earlier run in this process may have been interrupted
    previous, excepthook = signal.signal(signal.SIGINT, on_ctrl_c), threading.excepthook
    threading.excepthook = lambda args: None if INTERRUPTED.is_set() else excepthook(args)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if not INTERRUPTED.is_set():   # else Beam's threads may still be winding down
            threading.excepthook = excepthook


def run(argv: list[str] | None = None) -> dict:
    """Parses flags, builds and runs the pipeline; returns the manifest (read back from the output)."""
    if argv is not None and ('-h' in argv or '--help' in argv):
        BuildOptions(['--help'])
    options = parse(argv)
    opts = options.view_as(BuildOptions)
    if opts.validate_only:
        return validate_only(options)
    # A rebuild holds runs/<run_id>/ from here on (refused if taken, published or complete); a failure releases it.
    claim = claim_run(opts.output_root, opts.run_id, options.view_as(StandardOptions).runner) \
        if opts.output_root is not None else contextlib.nullcontext()
    manifest_path = layout.join(opts.output_dir, layout.MANIFEST_FILE)
    # The dataset is about to change: a reader must not trust the old manifest (or the old report, which
    # would describe data no longer there) meanwhile.
    for stale in (manifest_path, layout.join(opts.output_dir, REPORT_FILE)):
        if fileio.exists(stale):
            FileSystems.delete([stale])
    try:
        with ctrl_c_ends_workers(), claim, beam.Pipeline(options=options) as p:
            pipeline(p, opts)
    except BaseException as e:
        # The spill is a full copy of the data: a run that fails anywhere (not only in the seal, which
        # cleans up after itself) must not leave it behind.
        fileio.delete_tree(layout.join(opts.output_dir, layout.SPILL_DIR))
        if not isinstance(e, KeyboardInterrupt) and no_space(e):
            where = (f'--output_dir {opts.output_dir}' if opts.output_root is None else
                     f'--output_root {opts.output_root} (run {opts.run_id})')
            raise UserError(no_space_message(e, where) + '. The output is incomplete: it has no '
                            'manifest.json' + ('' if opts.output_root is None else
                                               ', and latest.json still points at the last good run'),
                            EXIT_NO_SPACE) from e
        raise
    return json.loads(fileio.read_bytes(manifest_path))


def validate_only(options: PipelineOptions) -> dict:
    """Constructs (never runs) the pipeline under the given runner; returns the plan."""
    # Beam's own test flag: runners do not submit, and option validation makes no calls to GCP.
    options.view_as(TestOptions).dry_run = True
    p = beam.Pipeline(options=options)
    plan = pipeline(p, options.view_as(BuildOptions))
    proto = p.to_runner_api()  # what a runner would receive: fails here if the graph cannot be encoded
    plan['validate_only'] = {'runner': type(p.runner).__name__, 'transforms': len(proto.components.transforms),
                       'output_dir': options.view_as(BuildOptions).output_dir}
    return plan


def _main(argv: list[str]) -> int:
    if '-h' in argv or '--help' in argv:
        help_parser().print_help()
        return EXIT_OK
    setup_logging(argv)
    with quiet_worker_tracebacks(argv):
        manifest = run(argv)
    if manifest.get('validate_only'):
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return EXIT_OK
    from pipelines.summary import format_summary
    print(format_summary(manifest, manifest['options']['output_dir']))
    return EXIT_OK


def main() -> None:
    """``python -m pipelines.build_dataset``; exit status as in EXIT_CODES_HELP (--help lists it)."""
    run_cli(_main)


if __name__ == '__main__':
    main()
