#!/usr/bin/env bash
# Runs the build on Google Cloud Dataflow. Needs gcloud credentials and a bucket; nothing here was run
# against real GCP from the development machines (no internet there).
#
#   PROJECT=my-proj REGION=us-central1 BUCKET=gs://my-bucket ./run_dataflow.sh \
#       --features_dir gs://us_audioset/youtube_corpus/v1/features/audioset_v1_embeddings \
#       --segments_dir gs://my-bucket/audioset/csv --output_dir gs://my-bucket/audioset/parquet
#
# Extra flags go to `python -m pipelines.build_dataset` (e.g. --max_num_workers 20 --machine_type n2-standard-4).
# Dry run: DRY_RUN=1 prints the command without submitting.
# Flex Templates, scheduled rebuilds and a custom container come with the Dataflow work (see README).
set -euo pipefail
cd "$(dirname "$0")"
: "${PROJECT:?set PROJECT to your GCP project id}"
: "${REGION:?set REGION, e.g. us-central1}"
: "${BUCKET:?set BUCKET to a gs:// bucket for staging and temp files}"
python="$(scripts/ensure_env.sh requirements.txt)"
cmd=("$python" -m pipelines.build_dataset --runner DataflowRunner --project "$PROJECT" --region "$REGION"
     --temp_location "$BUCKET/tmp" --staging_location "$BUCKET/staging" --setup_file ./setup.py
     --job_name "audioset-build-$(date +%Y%m%d-%H%M%S)" "$@")
if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
exec "${cmd[@]}"
