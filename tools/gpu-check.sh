#!/usr/bin/env bash
# One prepared GPU check (each step under its own time limit: 8 min at most on one GPU): the CUDA tests,
# the benchmark on the GPU, and a short compiled training run on regenerated data. Writes everything under ${OUT:-gpu-check}/.
#   tools/gpu-check.sh            # then read gpu-check/summary.txt and gpu-check/bench.json
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/summary.txt"; }
timeout 20 python -c 'import torch; assert torch.cuda.is_available(), "CUDA is not usable"; print(torch.__version__, torch.cuda.get_device_name())' \
    > "$OUT/device.txt" 2>&1 || { log "no usable CUDA: $(tail -1 "$OUT/device.txt")"; exit 2; }
log "device: $(cat "$OUT/device.txt")"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

# -v: each test named as it ends, so that a run cut short still says which passed
timeout 140 python -m pytest -v -p no:cacheprovider tests/test_cuda.py > "$OUT/tests.txt" 2>&1
log "tests (exit $?): $(tail -1 "$OUT/tests.txt")"

# bench.json is rewritten after each section ("complete": false until the end): a bench cut short keeps
# what it measured
timeout 210 python -m mfql.bench device=cuda updates=200 eval_episodes=50 eval_env_steps=200 \
    packed_seeds='[1,8]' packed_models='[paper]' out="$OUT/bench.json" > "$OUT/bench.out" 2> "$OUT/bench.err"
log "bench (exit $?): $OUT/bench.json, sections: $(python -c 'import json, sys; print(*json.load(open(sys.argv[1])))' \
    "$OUT/bench.json" 2>/dev/null)"

data="$OUT/data/ogbench"
tree_rss_mb() {  # the resident memory of a process and all its descendants, MB (as a job's cgroup counts it)
    local pids=$1 all=$1
    while [ -n "$pids" ]; do pids=$(pgrep -d, -P "$pids"); [ -n "$pids" ] && all="$all,$pids"; done
    ps -o rss= -p "$all" | awk '{s += $1} END {print int(s / 1024)}'
}
if ! timeout 20 python -m mfql.datagen dataset=cube-single-play-v0 episodes=2 episode_steps=200 out_dir="$data" \
        seed=0 > "$OUT/datagen.txt" 2>&1; then
    log "datagen failed, no training run: $(tail -1 "$OUT/datagen.txt")"
    exit 1
fi
timeout 90 python -m mfql.train task=cube-single-play-singletask-task1-v0 seeds='[0,1,2,3]' \
    out_dir="$OUT/run" data_dir="$(dirname "$data")" device=cuda offline_steps=2500 online_steps=500 \
    eval_interval=1500 eval_episodes=10 env_workers=4 log_interval=500 > "$OUT/train.txt" 2>&1 &
job=$! peak=0
while kill -0 "$job" 2>/dev/null; do
    now=$(tree_rss_mb "$job"); [ "${now:-0}" -gt "$peak" ] && peak=$now; sleep 0.5
done
wait "$job"
log "train (exit $?): $(grep -o 'done: .*' "$OUT/train.txt" | tail -1)"
log "train host memory (4 packed seeds, 4 environment workers): $(grep -o 'memory (resident MB).*' "$OUT/train.txt"); with its workers at most ${peak} MB (sampled every 0.5 s)"
log "seed0 train.csv header and last row: $(head -1 "$OUT/run/seed0/train.csv" 2>/dev/null) / $(tail -1 "$OUT/run/seed0/train.csv" 2>/dev/null)"
