#!/usr/bin/env bash
# The original study's comparison grid at its full budget (10 epochs, all training data), on a lent
# GPU, in one device call: all 14 runs train at once, one process each, sharing the GPU.
#
# On this machine, from the repository root:
#   bash training/gpu_grid.sh prepare   # the FER+ pack and a wheel into .gpu-kit/ (git-ignored);
#                                       # the model files leave the git index so the tree fits in 64 MiB
# The device call (the `device` tool's run):
#   command: bash training/gpu_grid.sh run     carry: [".gpu-kit"]     timeout_s: 600
# Back on this machine, at once:
#   bash training/gpu_grid.sh restore   # the model files are tracked again
#   tar xzf <files_at>/grid.tar.gz      # the results, into training/results/full-budget/
#
# Settings for `run` (environment): GRID_EPOCHS (10), GRID_TRAIN_FRACTION (1.0), GRID_EVAL_FRACTION
# (1.0), GRID_JOBS (14), GRID_SECONDS (500: the grid stops there so the results still come back),
# GRID_DEVICE (auto), GRID_OUTPUT (training/results/full-budget).
set -euo pipefail

KIT=.gpu-kit
MODELS=resources/models
PLATFORMDIRS=platformdirs==4.14.9  # the one package of ours the GPU machine's image lacks

exclude() {  # add a line to .git/info/exclude once
    grep -qxF "$1" .git/info/exclude 2>/dev/null || echo "$1" >>.git/info/exclude
}

case "${1:-}" in
prepare)
    python="${PYTHON:-.venv/bin/python}"
    exclude "/$KIT/"
    mkdir -p "$KIT"
    [ -f "$KIT/ferplus.tar.xz" ] || "$python" -m training pack --output "$KIT/ferplus.tar.xz"
    ls "$KIT"/platformdirs-*.whl >/dev/null 2>&1 ||
        "$python" -m pip download -q --no-deps --only-binary=:all: -d "$KIT" "$PLATFORMDIRS"
    for f in $(git ls-files "$MODELS" | grep -E '\.(pt|onnx)$'); do
        exclude "/$f"
        git rm -q --cached "$f"
    done
    echo "ready: $(du -sh "$KIT" | cut -f1) in $KIT; model files out of the index until 'restore'"
    ;;
run)
    out="${OUT:-/tmp/grid-out}"
    output="${GRID_OUTPUT:-training/results/full-budget}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/grid-site "$KIT"/*.whl
    export PYTHONPATH="/tmp/grid-site:$PWD" PYTHONUNBUFFERED=1
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    python3 -m training unpack --pack "$KIT/ferplus.tar.xz" --output-dir /tmp/grid-data
    status=0
    budget=(--budget-epochs "${GRID_EPOCHS:-10}" --train-fraction "${GRID_TRAIN_FRACTION:-1.0}"
        --eval-fraction "${GRID_EVAL_FRACTION:-1.0}" --data-dir /tmp/grid-data --output-dir "$output")
    timeout "${GRID_SECONDS:-500}" python3 -m training compare "${budget[@]}" --jobs "${GRID_JOBS:-14}" \
        --threads 1 --device "${GRID_DEVICE:-auto}" --work-dir /tmp/grid-work --no-progress || status=$?
    python3 -m training compare "${budget[@]}" --table-only  # the runs that finished, if the time ran out
    mkdir -p "$output/logs"
    cp /tmp/grid-work/*.log "$output/logs/" 2>/dev/null || true
    tar czf "$out/grid.tar.gz" "$output"
    echo "grid exit status $status; results in $out/grid.tar.gz"
    exit "$status"
    ;;
restore)
    git reset -q -- "$MODELS"
    for f in $(git ls-files "$MODELS" | grep -E '\.(pt|onnx)$'); do
        grep -vxF "/$f" .git/info/exclude >.git/info/exclude.tmp && mv .git/info/exclude.tmp .git/info/exclude
    done
    git status --short "$MODELS"
    echo "model files tracked again"
    ;;
*)
    echo "usage: bash training/gpu_grid.sh {prepare|run|restore} (see the comments at its top)" >&2
    exit 2
    ;;
esac
