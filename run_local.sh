#!/usr/bin/env bash
# Builds the dataset on DirectRunner. With no arguments: the bundled sample into ./out.
# Any flag of `python -m pipelines.build_dataset` may be passed, e.g.
#   ./run_local.sh --features_dir /data/audioset_v1_embeddings --segments_dir /data/csv --output_dir /data/out
set -euo pipefail
cd "$(dirname "$0")"
python="$(scripts/ensure_env.sh requirements.txt)"
args=("$@")
case " $* " in *" --output_dir"*) ;; *) args+=(--output_dir out) ;; esac
# One DirectRunner worker thread per core: the heavy work (TensorFlow parsing, Arrow, Parquet, zstd) runs
# outside the GIL, and threads beat processes here (no worker start-up, no copies between processes).
case " $* " in *" --direct_num_workers"*|*" --runner"*|*" --direct_running_mode"*) ;; *)
  args+=(--direct_num_workers "$(nproc 2>/dev/null || echo 2)" --direct_running_mode multi_threading) ;; esac
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$python" -m pipelines.build_dataset "${args[@]}"
