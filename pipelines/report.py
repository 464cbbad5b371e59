"""Writes report.html of an existing dataset again (every build writes one; this redraws it).

    python -m pipelines.report OUTPUT_DIR          # local or gs://; a --output_root: its latest run

Reads manifest.json, classes.parquet, dead_letters/, the footers of missing_features/ and, for a dataset
built before the manifest had ``distributions`` or one with computed embeddings, the columns of clips/ that
the report needs (never the embeddings of released rows). Prints the report's path.
"""
from __future__ import annotations

import json

from pipelines.args import ArgumentParser, gcs_path_problem
from pipelines.console import run_cli
from pipelines.errors import EXIT_CODES_HELP, EXIT_OK, InputError, UsageError, UserError


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog='python -m pipelines.report', description=__doc__.split('\n\n')[0],
        epilog=EXIT_CODES_HELP, formatter_class=__import__('argparse').RawDescriptionHelpFormatter)
    parser.add_argument('output_dir', metavar='OUTPUT_DIR',
                        help='a build\'s --output_dir (local or gs://), or its --output_root (the latest run)')
    parser.add_argument('--verbose', action='store_true', help='tracebacks for expected errors too')
    return parser


def resolve(output_dir: str) -> str:
    """The dataset folder: ``output_dir`` itself, or the run latest.json points at. Raises InputError
    (exit 4) when neither holds a finished build."""
    from audioset_beam import layout
    from transforms import fileio
    from transforms.core import runs
    problem = gcs_path_problem(output_dir)
    if problem:
        raise UsageError(f'OUTPUT_DIR {output_dir}: {problem}')
    try:
        if fileio.exists(layout.join(output_dir, layout.MANIFEST_FILE)):
            return output_dir
        latest = layout.join(output_dir, runs.LATEST_FILE)
        if fileio.exists(latest):
            run_dir = json.loads(fileio.read_bytes(latest))['run_dir']
            if fileio.exists(layout.join(run_dir, layout.MANIFEST_FILE)):
                return run_dir
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 -- gs:// unreachable, no permission: name the path
        raise InputError(f'OUTPUT_DIR {output_dir}: cannot be read ({type(e).__name__}: {e})') from e
    raise InputError(f'OUTPUT_DIR {output_dir}: no manifest.json (nor a latest.json pointing at a run with '
                     'one): not a finished build. A build writes manifest.json last, when its checks pass.')


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_strict(argv)
    out = resolve(args.output_dir)
    from transforms.report import gather, write_report
    try:
        data = gather(out)
    except (KeyError, ValueError, OSError) as e:
        if isinstance(e, UserError):
            raise
        raise InputError(f'{out}: the dataset cannot be reported on ({type(e).__name__}: {e}); '
                         'is it a complete build of this version?') from e
    # Drawing what was read is this tool's own work: a failure there is a bug (a traceback, exit 70), not
    # the dataset's fault.
    print(write_report(out, data=data))
    return EXIT_OK


def main() -> None:
    """``python -m pipelines.report``; exit status as in EXIT_CODES_HELP."""
    run_cli(run)


if __name__ == '__main__':
    main()
