"""Dataflow front end behind ``run_dataflow.sh``: submit a build, build/run a Flex Template, schedule it.

    python -m pipelines.dataflow run      --project P --region R --bucket gs://B [--dry-run] -- BUILD FLAGS
    python -m pipelines.dataflow template build --project P --region R --bucket gs://B [--image I] [--dry-run]
    python -m pipelines.dataflow template run   --project P --region R --bucket gs://B [--dry-run] -- BUILD FLAGS
    python -m pipelines.dataflow schedule --cron "0 3 * * 1" --project P --region R --bucket gs://B \\
        --service_account SA [--dry-run] -- BUILD FLAGS

Every gcloud command is composed here and printed exactly as it would run; ``--dry-run`` prints without
running and, for ``run``, constructs the pipeline graph under DataflowRunner options (``--validate_only``)
so flags, inputs and the graph are checked offline.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shlex
import subprocess
import sys

from pipelines.args import ArgumentParser, gcs_path_problem
from pipelines.console import run_cli, setup_logging
from pipelines.errors import EXIT_CODES_HELP, UsageError

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATE_NAME = 'audioset-beam'
# Build flags a Flex Template exposes as parameters (metadata.json lists the same ones).
TEMPLATE_PARAMETERS = ('features_dir', 'segments_dir', 'class_index', 'ontology', 'output_root', 'output_dir',
                       'keep_runs', 'max_bad_fraction', 'group_mb')
# Template parameters that are paths: the launcher and workers can read only gs:// (the class index and
# ontology default to the copies in the image when not given).
TEMPLATE_PATHS = ('features_dir', 'segments_dir', 'class_index', 'ontology', 'output_root', 'output_dir')


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--project', default=_env('PROJECT'), help='GCP project (env PROJECT)')
    common.add_argument('--region', default=_env('REGION'), help='Dataflow region (env REGION)')
    common.add_argument('--bucket', default=_env('BUCKET'), help='gs:// bucket for staging, temp and templates '
                                                                 '(env BUCKET)')
    common.add_argument('--machine_type', default=_env('MACHINE_TYPE') or 'n2-standard-4')
    common.add_argument('--max_workers', type=int, default=int(_env('MAX_WORKERS') or 20))
    common.add_argument('--worker_accelerator', default=_env('WORKER_ACCELERATOR'),
                        help='e.g. "type:nvidia-tesla-t4;count:1;install-nvidia-driver" (for embedding audio)')
    common.add_argument('--image', default=_env('IMAGE'),
                        help='container image (Artifact Registry) with ffmpeg and the code; default '
                             '<region>-docker.pkg.dev/<project>/audioset-beam/audioset-beam:latest')
    common.add_argument('--service_account', default=_env('SERVICE_ACCOUNT'),
                        help='worker / scheduler service account email')
    common.add_argument('--dry-run', dest='dry_run', action='store_true',
                        help='print the exact commands and check flags, inputs (listing gs:// needs network '
                             'access to Cloud Storage) and, for run, the job graph; submit nothing')
    common.add_argument('--verbose', action='store_true', help='print tracebacks of expected errors too')
    parser = ArgumentParser(prog='run_dataflow.sh', description=__doc__.split('\n\n')[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('run', parents=[common], help='submit a build job (code staged with setup.py, or --image)')
    template = sub.add_parser('template', help='Flex Template: build or run')
    tsub = template.add_subparsers(dest='template_command', required=True)
    tsub.add_parser('build', parents=[common], help='build the container and the template spec')
    tsub.add_parser('run', parents=[common], help='launch a job from the template')
    schedule = sub.add_parser('schedule', parents=[common], help='a recurring rebuild (Cloud Scheduler -> '
                                                                 'Flex Template launch API)')
    schedule.add_argument('--cron', required=True, help='unix cron, e.g. "0 3 * * 1" (Mondays 03:00)')
    schedule.add_argument('--time_zone', default='Etc/UTC')
    schedule.add_argument('--job', default='audioset-rebuild', help='scheduler job name')
    return parser


def _require(args, *names) -> None:
    missing = [n for n in names if not getattr(args, n)]
    if missing:
        raise UsageError('missing ' + ', '.join(f'--{n} (or env {n.upper()})' for n in missing))
    if not args.bucket.startswith('gs://'):
        raise UsageError(f'--bucket must be a gs:// URL, got {args.bucket}')
    # Checked here, offline: with a bad bucket Beam would try to create a default one over the network.
    problem = gcs_path_problem(args.bucket)
    if problem:
        raise UsageError(f'--bucket {args.bucket}: {problem}')


def image(args) -> str:
    return args.image or f'{args.region}-docker.pkg.dev/{args.project}/audioset-beam/audioset-beam:latest'


def template_spec(args) -> str:
    return f'{args.bucket.rstrip("/")}/templates/{TEMPLATE_NAME}.json'


def _job_name(prefix: str = 'audioset-build') -> str:
    return f'{prefix}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}'


def run_command(args, build_flags: list[str]) -> list[str]:
    """The ``python -m pipelines.build_dataset`` command line for a Dataflow job."""
    b = args.bucket.rstrip('/')
    cmd = [sys.executable, '-m', 'pipelines.build_dataset', '--runner', 'DataflowRunner',
           '--project', args.project, '--region', args.region, '--temp_location', f'{b}/tmp',
           '--staging_location', f'{b}/staging', '--job_name', _job_name(),
           '--machine_type', args.machine_type, '--max_num_workers', str(args.max_workers)]
    if args.image:
        cmd += ['--sdk_container_image', args.image, '--sdk_location', 'container']
    else:
        cmd += ['--setup_file', str(ROOT / 'setup.py')]
    if args.worker_accelerator:
        cmd += ['--dataflow_service_options', f'worker_accelerator={args.worker_accelerator}']
    if args.service_account:
        cmd += ['--service_account_email', args.service_account]
    return cmd + build_flags


def template_build_commands(args) -> list[list[str]]:
    img = image(args)
    return [
        ['gcloud', 'builds', 'submit', str(ROOT), '--project', args.project, '--region', args.region, '--tag', img],
        ['gcloud', 'dataflow', 'flex-template', 'build', template_spec(args), '--project', args.project,
         '--image', img, '--sdk-language', 'PYTHON', '--metadata-file', str(ROOT / 'dataflow' / 'metadata.json')],
    ]


def _template_parameters(build_flags: list[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` build flags as Flex Template parameters."""
    params, it = {}, iter(build_flags)
    for flag in it:
        if not flag.startswith('--'):
            raise UsageError(f'unexpected argument {flag!r}')
        name, _, value = flag[2:].partition('=')
        if not value:
            value = next(it, None)
            if value is None:
                raise UsageError(f'--{name} needs a value')
        if name not in TEMPLATE_PARAMETERS:
            raise UsageError(f'--{name} is not a template parameter (one of {", ".join(TEMPLATE_PARAMETERS)})')
        if name in TEMPLATE_PATHS:
            problem = ('the template\'s job can read and write only gs:// paths' if not value.startswith('gs://')
                       else gcs_path_problem(value))
            if problem:
                raise UsageError(f'--{name} {value}: {problem}')
        params[name] = value
    return params


def _environment(args) -> dict:
    env = {'tempLocation': f'{args.bucket.rstrip("/")}/tmp', 'machineType': args.machine_type,
           'maxWorkers': args.max_workers, 'sdkContainerImage': image(args)}
    if args.service_account:
        env['serviceAccountEmail'] = args.service_account
    if args.worker_accelerator:
        env['additionalExperiments'] = [f'worker_accelerator={args.worker_accelerator}']
    return env


def template_run_command(args, build_flags: list[str]) -> list[str]:
    params = _template_parameters(build_flags)
    cmd = ['gcloud', 'dataflow', 'flex-template', 'run', _job_name('audioset-template'), '--project', args.project,
           '--region', args.region, '--template-file-gcs-location', template_spec(args),
           '--temp-location', f'{args.bucket.rstrip("/")}/tmp', '--max-workers', str(args.max_workers),
           '--worker-machine-type', args.machine_type]
    if args.service_account:
        cmd += ['--service-account-email', args.service_account]
    if params:
        cmd += ['--parameters', ','.join(f'{k}={v}' for k, v in params.items())]
    return cmd


def launch_body(args, build_flags: list[str]) -> dict:
    """The Flex Template launch request a scheduled rebuild sends (each launch gets a new run id)."""
    return {'launchParameter': {'jobName': 'audioset-rebuild', 'containerSpecGcsPath': template_spec(args),
                                'parameters': _template_parameters(build_flags), 'environment': _environment(args)}}


def schedule_command(args, build_flags: list[str]) -> list[str]:
    params = _template_parameters(build_flags)
    if 'output_root' not in params:
        raise UsageError('a scheduled rebuild needs --output_root (runs/<run_id>/ + latest.json), '
                         'not --output_dir')
    uri = (f'https://dataflow.googleapis.com/v1b3/projects/{args.project}/locations/{args.region}'
           '/flexTemplates:launch')
    return ['gcloud', 'scheduler', 'jobs', 'create', 'http', args.job, '--project', args.project,
            '--location', args.region, '--schedule', args.cron, '--time-zone', args.time_zone, '--uri', uri,
            '--http-method', 'POST', '--headers', 'Content-Type=application/json',
            '--oauth-service-account-email', args.service_account,
            '--message-body', json.dumps(launch_body(args, build_flags), sort_keys=True)]


def _show(cmd: list[str]) -> None:
    print(shlex.join(cmd), flush=True)


def _execute(cmds: list[list[str]], dry_run: bool) -> int:
    for cmd in cmds:
        _show(cmd)
        if not dry_run:
            rc = subprocess.call(cmd)
            if rc:
                return rc
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses, composes, checks and (unless --dry-run) runs the commands; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    build_flags: list[str] = []
    if '--' in argv:
        i = argv.index('--')
        argv, build_flags = argv[:i], argv[i + 1:]
    args = _parser().parse_args(argv)
    _require(args, 'project', 'region', 'bucket')
    if args.command == 'run':
        cmd = run_command(args, build_flags)
        _show(cmd)
        if args.dry_run:
            # Flags parse, inputs are on gs:// and exist, the graph constructs for DataflowRunner.
            setup_logging(argv + build_flags)
            from pipelines import build_dataset
            plan = build_dataset.run(cmd[3:] + ['--validate_only'])
            print(json.dumps({'validated': plan['validate_only'], 'inputs': plan['inputs']}, indent=2))
            return 0
        return subprocess.call(cmd, cwd=ROOT)
    if args.command == 'template':
        if args.template_command == 'build':
            return _execute(template_build_commands(args), args.dry_run)
        return _execute([template_run_command(args, build_flags)], args.dry_run)
    if not args.service_account:
        raise UsageError('schedule needs --service_account (allowed to launch Dataflow jobs)')
    return _execute([schedule_command(args, build_flags)], args.dry_run)


if __name__ == '__main__':
    run_cli(main)
