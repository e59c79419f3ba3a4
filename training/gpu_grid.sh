#!/usr/bin/env bash
# The original study's comparison grid at its full budget (10 epochs, all training data), on a lent
# GPU, in one device call: all 14 runs train at once, one process each, sharing the GPU. Beside them
# the shipping recipe trains a VGG19 from scratch (training/README.md's 30-epoch command).
#
# On this machine, from the repository root:
#   bash training/gpu_grid.sh prepare   # the FER+ pack and a wheel into .gpu-kit/ (git-ignored);
#                                       # the model files leave the git index so the tree fits in 64 MiB
# The device call (the `device` tool's run):
#   command: bash training/gpu_grid.sh run     carry: [".gpu-kit"]     timeout_s: 600
# Back on this machine, at once:
#   bash training/gpu_grid.sh restore   # the model files are tracked again
#   tar xzf <files_at>/grid.tar.gz      # the results, into training/results/full-budget/ (the VGG19's
#                                       # summary.csv, log and test_metrics.json in its ship/ folder)
#   mkdir -p runs && cat <files_at>/ship_vgg19_fp16.pt.part* > runs/ship_vgg19_fp16.pt  # its best weights
#   .venv/bin/python -m training evaluate --checkpoint runs/ship_vgg19_fp16.pt           # (valid), fp16
#
# Settings for `run` (environment): GRID_EPOCHS (10), GRID_TRAIN_FRACTION (1.0), GRID_EVAL_FRACTION
# (1.0), GRID_JOBS (14), GRID_SECONDS (500: training stops that long after `run` starts, the unpacking
# included, so the results still come back within the call's 600 s),
# GRID_DEVICE (auto), GRID_OUTPUT (training/results/full-budget), SHIP_EPOCHS (30; 0 skips the VGG19).
set -euo pipefail

KIT=.gpu-kit
MODELS=fermonitor/resources/models
PLATFORMDIRS=platformdirs==4.14.9  # the one package of ours the GPU machine's image lacks
# `run`'s scratch space on the GPU machine; a fixed place, so a second call on the same machine resumes
SCRATCH="${TMPDIR:-/tmp}/fermonitor-grid"

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
    out="${OUT:-$SCRATCH/out}"
    output="${GRID_OUTPUT:-training/results/full-budget}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SCRATCH/site" "$KIT"/*.whl
    export PYTHONPATH="$SCRATCH/site:$PWD" PYTHONUNBUFFERED=1
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    python3 -m training unpack --pack "$KIT/ferplus.tar.xz" --output-dir "$SCRATCH/data"
    left=$(( ${GRID_SECONDS:-500} - SECONDS ))  # bash counts SECONDS from the script's start
    [ "$left" -gt 10 ] || left=10
    echo "training for at most $left s"
    status=0
    shares=(--train-fraction "${GRID_TRAIN_FRACTION:-1.0}" --eval-fraction "${GRID_EVAL_FRACTION:-1.0}"
        --data-dir "$SCRATCH/data" --device "${GRID_DEVICE:-auto}" --no-progress)
    ship_epochs="${SHIP_EPOCHS:-30}"
    mkdir -p "$SCRATCH/ship"
    ship_pid=""
    if [ "$ship_epochs" -gt 0 ]; then
        timeout "$left" python3 -m training train --arch vgg19 --epochs "$ship_epochs" \
            --batch-size 128 --lr 0.1 --nesterov --cycle-momentum --weight-decay 5e-4 --soft-targets \
            --augment flip,crop,rotate,erase --threads 2 --output-dir "$SCRATCH/ship" --resume "${shares[@]}" \
            >"$SCRATCH/ship/train.log" 2>&1 &
        ship_pid=$!
    fi
    timeout "$left" python3 -m training compare --budget-epochs "${GRID_EPOCHS:-10}" \
        --output-dir "$output" "${shares[@]}" --jobs "${GRID_JOBS:-14}" --threads 1 --work-dir "$SCRATCH/compare" ||
        status=$?
    # the runs that finished, if the time ran out
    python3 -m training compare --budget-epochs "${GRID_EPOCHS:-10}" --output-dir "$output" "${shares[@]}" \
        --table-only || status=$?  # the archive below is written even so
    mkdir -p "$output/logs"
    cp "$SCRATCH"/compare/*.log "$output/logs/" 2>/dev/null || true
    ship_status=0
    [ -z "$ship_pid" ] || wait "$ship_pid" || ship_status=$?  # stopped by its own timeout at the latest
    if [ -f "$SCRATCH/ship/best.pt" ]; then
        # fp16 like the shipped model, in parts under the 16 MiB a device call brings back per file
        python3 -c "import sys; from fermonitor.core.checkpoint import load_checkpoint, save_checkpoint
model, meta = load_checkpoint(sys.argv[1]); save_checkpoint(sys.argv[2], model, meta, half=True)" \
            "$SCRATCH/ship/best.pt" "$SCRATCH/ship/vgg19_fp16.pt" &&
            split -b 15M -d "$SCRATCH/ship/vgg19_fp16.pt" "$out/ship_vgg19_fp16.pt.part" ||
            echo "the VGG19's weights could not be converted; its log says why" >&2
    fi
    mkdir -p "$output/ship"
    cp "$SCRATCH"/ship/{train.log,summary.csv,args.json,test_metrics.json} "$output/ship/" \
        2>/dev/null || true
    tar czf "$out/grid.tar.gz" "$output"
    echo "grid exit status $status, VGG19 exit status $ship_status; results in $out"
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
