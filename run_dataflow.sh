#!/usr/bin/env bash
# Google Cloud Dataflow: submit a build, build/run a Flex Template, or schedule rebuilds.
#
#   ./run_dataflow.sh run --project P --region us-central1 --bucket gs://B [--dry-run] -- \
#       --features_dir gs://.../audioset_v1_embeddings --segments_dir gs://B/csv --output_root gs://B/audioset
#   ./run_dataflow.sh template build --project P --region us-central1 --bucket gs://B [--dry-run]
#   ./run_dataflow.sh template run   --project P --region us-central1 --bucket gs://B -- --features_dir ... --output_root ...
#   ./run_dataflow.sh schedule --cron "0 3 * * 1" --service_account SA --project P --region R --bucket gs://B -- ...
#
# --project/--region/--bucket/--image/--machine_type/--max_workers/--worker_accelerator/--service_account may
# also come from the environment (PROJECT, REGION, ...). --dry-run prints the exact commands, and for `run`
# checks flags, inputs and the pipeline graph under DataflowRunner options, submitting nothing.
# See README.md, "Run on Dataflow".
set -euo pipefail
cd "$(dirname "$0")"
python="$(scripts/ensure_env.sh requirements.txt)"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$python" -m pipelines.dataflow "$@"
