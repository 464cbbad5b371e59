"""run_dataflow.sh: the commands it composes, and the offline check of a Dataflow job (graph under
DataflowRunner options, inputs listed from gs:// on a local emulator)."""
import json
import os
import subprocess
import sys

import pytest

from pipelines import dataflow
from pipelines.errors import UsageError
from tests.fixtures import ROOT, copy_sample
from tests.gcs import gcs_emulator, upload_tree

COMMON = ['--project', 'proj-x', '--region', 'us-central1', '--bucket', 'gs://bkt-x']


def _parse(argv):
    return dataflow._parser().parse_args(argv)


def test_run_command_stages_code_and_passes_build_flags():
    args = _parse(['run', *COMMON, '--worker_accelerator', 'type:nvidia-tesla-t4;count:1;install-nvidia-driver'])
    cmd = dataflow.run_command(args, ['--output_root', 'gs://bkt-x/out'])
    assert cmd[1:3] == ['-m', 'pipelines.build_dataset']
    pairs = dict(zip(cmd[3::2], cmd[4::2]))
    assert pairs['--runner'] == 'DataflowRunner' and pairs['--setup_file'].endswith('setup.py')
    assert pairs['--temp_location'] == 'gs://bkt-x/tmp' and pairs['--staging_location'] == 'gs://bkt-x/staging'
    assert pairs['--dataflow_service_options'].startswith('worker_accelerator=type:nvidia-tesla-t4')
    assert cmd[-2:] == ['--output_root', 'gs://bkt-x/out']
    with_image = dataflow.run_command(_parse(['run', *COMMON, '--image', 'img:1']), [])
    assert '--sdk_container_image' in with_image and '--setup_file' not in with_image


def test_template_and_schedule_commands():
    args = _parse(['template', 'build', *COMMON])
    build, spec = dataflow.template_build_commands(args)
    assert build[:3] == ['gcloud', 'builds', 'submit'] and spec[:4] == ['gcloud', 'dataflow', 'flex-template', 'build']
    assert spec[4] == 'gs://bkt-x/templates/audioset-beam.json'
    assert spec[spec.index('--metadata-file') + 1] == str(ROOT / 'dataflow' / 'metadata.json')
    metadata = json.loads((ROOT / 'dataflow' / 'metadata.json').read_text())
    assert {p['name'] for p in metadata['parameters']} == set(dataflow.TEMPLATE_PARAMETERS)
    run = dataflow.template_run_command(_parse(['template', 'run', *COMMON]),
                                        ['--features_dir', 'gs://bkt-a/f', '--output_root=gs://bkt-a/o'])
    assert run[run.index('--parameters') + 1] == 'features_dir=gs://bkt-a/f,output_root=gs://bkt-a/o'
    sched = _parse(['schedule', *COMMON, '--cron', '0 3 * * 1', '--service_account', 'sa@x'])
    cmd = dataflow.schedule_command(sched, ['--features_dir', 'gs://bkt-a/f', '--output_root', 'gs://bkt-a/o'])
    body = json.loads(cmd[cmd.index('--message-body') + 1])
    assert body['launchParameter']['parameters'] == {'features_dir': 'gs://bkt-a/f', 'output_root': 'gs://bkt-a/o'}
    assert cmd[cmd.index('--schedule') + 1] == '0 3 * * 1'
    assert cmd[cmd.index('--uri') + 1].endswith('/projects/proj-x/locations/us-central1/flexTemplates:launch')
    with pytest.raises(UsageError, match='output_root'):
        dataflow.schedule_command(sched, ['--output_dir', 'gs://bkt-a/o'])
    with pytest.raises(UsageError, match='not a template parameter'):
        dataflow.template_run_command(sched, ['--runner', 'x'])


def test_missing_settings_are_named():
    with pytest.raises(UsageError, match='--project'):
        dataflow.main(['run', '--region', 'r', '--bucket', 'gs://b'])


def test_dry_run_checks_gcs_inputs_and_the_dataflow_graph(tmp_path):
    local = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=5)
    with gcs_emulator(tmp_path) as client:
        client.create_bucket('bkt-x')
        root = upload_tree(client, 'bkt-x', local, 'release')
        flags = ['--features_dir', f'{root}/features', '--segments_dir', f'{root}/segments',
                 '--class_index', f'{root}/class_labels_indices.csv', '--ontology', f'{root}/ontology.json',
                 '--output_root', 'gs://bkt-x/audioset']
        out = subprocess.run(['bash', str(ROOT / 'run_dataflow.sh'), 'run', *COMMON, '--dry-run', '--', *flags],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, 'AUDIOSET_BEAM_VENV': sys.prefix})
        assert out.returncode == 0, out.stderr[-3000:]
        first, rest = out.stdout.split('\n', 1)
        assert '--runner DataflowRunner' in first
        report = json.loads(rest)
        assert report['validated']['runner'] == 'DataflowRunner' and report['validated']['transforms'] > 50
        assert report['validated']['output_dir'].startswith('gs://bkt-x/audioset/runs/')
        assert report['inputs']['shards']['eval']['shards'] == 5
        # nothing was written: a dry run submits and writes nothing
        assert [b.name for b in client.list_blobs('bkt-x', prefix='audioset/')] == []
        missing = subprocess.run(['bash', str(ROOT / 'run_dataflow.sh'), 'run', *COMMON, '--dry-run', '--',
                                  *flags[2:8], '--features_dir', 'gs://bkt-x/nothing-here', '--output_dir', 'gs://bkt-x/o'],
                                 capture_output=True, text=True, timeout=300,
                                 env={**os.environ, 'AUDIOSET_BEAM_VENV': sys.prefix})
        assert missing.returncode != 0 and 'no shards found' in missing.stderr
