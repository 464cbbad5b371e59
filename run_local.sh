#!/usr/bin/env bash
# Builds the dataset on DirectRunner. With no arguments: the bundled sample into ./out.
# Any flag of `python -m pipelines.build_dataset` may be passed, e.g.
#   ./run_local.sh --features_dir /data/audioset_v1_embeddings --segments_dir /data/csv --output_dir /data/out
set -euo pipefail
cd "$(dirname "$0")"
python="$(scripts/ensure_env.sh requirements.txt)"
args=("$@")
case " $* " in *" --output_dir"*|*" --output_root"*|*" --validate_only"*|*" -h "*|*" --help "*) ;;
  *) args+=(--output_dir out) ;; esac
# The build itself runs DirectRunner with one worker process per core (see use_all_cores in
# pipelines/build_dataset.py); --direct_num_workers / --direct_running_mode / --runner override it.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$python" -m pipelines.build_dataset "${args[@]}"
