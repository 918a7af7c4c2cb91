#!/usr/bin/env bash
# The reference benchmark in one lent GPU slot (docs/results.md, "Reference training on a GPU").
#
# 1. Here, once, in the checkout the session runs from (writes .gpu/, which .gitignore names: the data and
#    the weights, packed under the device tool's 64 MiB; needs ../shared or FCNKIT_SHARED):
#        bash bench/gpu_session.sh pack
# 2. Through the device tool, one call:
#        run(command="bash bench/gpu_session.sh", carry=[".gpu"], timeout_s=600)
#    Arguments after the script's name go to bench/reference_gpu.py (e.g. --one-seed).
#    It works 8 min 20 s (--budget-s 500; BUDGET_S to change) and stops itself by 9 min 20 s (a run cut
#    there still returns what finished), inside the 10-minute command. Then give_back at once.
# 3. It leaves in $OUT (three files): tables.md (paste into docs/results.md), console.log, and
#    results.tar.gz (summary.json, every run's metrics.json and log, the grading benchmark's and the
#    cross-check's output).
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = "pack" ]; then
    python bench/reference_gpu.py --pack .gpu || exit 1
    # the grader's pages need two packages the GPU machine's image lacks (its package list: the device tool's
    # KINDS.md); without them the grading benchmark and the cross-check cannot start there (2026-12-04)
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels nh3 latex2mathml || exit 1
    size=$(( $(git ls-files -z | xargs -0 cat | wc -c) + $(du -sb .gpu | cut -f1) ))
    echo "the tree and .gpu travel as $((size / 1048576)) MiB (the device tool's limit: 64 MiB)"
    [ "$size" -lt $((62 * 1048576)) ] || { echo "too large to carry" >&2; exit 1; }
    echo 'now: run(command="bash bench/gpu_session.sh", carry=[".gpu"], timeout_s=600)'
    exit 0
fi

OUT=${OUT:-/tmp/fcnkit-gpu-out}
WORK=${WORK:-/tmp/fcnkit-gpu}
BUDGET_S=${BUDGET_S:-500}
mkdir -p "$OUT"
rm -f "$WORK/tables.md"  # a warm machine may hold an earlier run's
export PYTHONUNBUFFERED=1
PYTHON=$(command -v python3 || command -v python)
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then  # the packed wheels, for this run only
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/fcnkit-site .gpu/wheels/*.whl \
        && export PYTHONPATH=/tmp/fcnkit-site${PYTHONPATH:+:$PYTHONPATH}
fi
[ -f .gpu/data/PACK.json ] || { echo "no .gpu/data/PACK.json: run 'bash bench/gpu_session.sh pack' here first, then carry .gpu" \
    | tee "$OUT/console.log" >&2; exit 2; }
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 3
    # the packed images are already at half resolution: --scale 1.0 keeps them so
    timeout -k 5 $((BUDGET_S + 60)) "$PYTHON" bench/reference_gpu.py --out "$WORK" --data .gpu/data --scale 1.0 \
        --init .gpu/vgg16_features_fp16.pth --budget-s "$BUDGET_S" "$@"
    echo "reference_gpu.py exit code $?"
} 2>&1 | tee "$OUT/console.log"
cp "$WORK/tables.md" "$OUT/" 2>/dev/null
(cd "$WORK" 2>/dev/null && tar czf "$OUT/results.tar.gz" --ignore-failed-read summary.json tables.md ./*/metrics.json \
    ./*/log.txt grading_speed.txt grading_speed.json crosscheck.txt crosscheck.json 2>/dev/null)
ls -l "$OUT"
[ -f "$OUT/tables.md" ] || { echo "no tables: see console.log (and results.tar.gz for what finished)" >&2; exit 1; }
