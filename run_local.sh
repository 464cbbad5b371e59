#!/usr/bin/env bash
# Builds the dataset on DirectRunner. With no arguments: the bundled sample into ./out.
# Any flag of `python -m pipelines.build_dataset` may be passed, e.g.
#   ./run_local.sh --features_dir /data/audioset_v1_embeddings --segments_dir /data/csv --output_dir /data/out
set -euo pipefail
cd "$(dirname "$0")"
python="$(scripts/ensure_env.sh requirements.txt)"
args=("$@")
case " $* " in *" --output_dir"*) ;; *) args+=(--output_dir out) ;; esac
# Real inputs: one DirectRunner worker process per core. The small sample runs in-process (starts faster,
# and shows per-group progress).
case " $* " in *" --direct_num_workers"*|*" --runner"*) ;; *" --features_dir"*)
  args+=(--direct_num_workers "$(nproc 2>/dev/null || echo 2)" --direct_running_mode multi_processing) ;; esac
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$python" -m pipelines.build_dataset "${args[@]}"
