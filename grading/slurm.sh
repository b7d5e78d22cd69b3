#!/bin/bash
# Grade a large class as a SLURM job array: each task grades one shard (every N-th
# notebook), then one merge gives the class results. From the repository root, on a shared
# file system, with bubblewrap on the compute nodes:
#
#   .venv/bin/python -c "import secrets; print(secrets.token_hex(16))" > grades/seed
#   sbatch --array=0-7 grading/slurm.sh submissions grades        # 8 shards
#   .venv/bin/llmcourse-grade merge grades/shard-* --out grades/class   # after they finish
#
# A shard that stops (a node lost, time out) is resubmitted as is: it resumes, skipping the
# notebooks it already graded. Merging is idempotent: run it again after a resubmission.
#SBATCH --job-name=llmcourse-grade
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=grades/slurm-%A_%a.out
set -euo pipefail
SUBMISSIONS=${1:?usage: sbatch --array=0-N grading/slurm.sh SUBMISSIONS OUT}
OUT=${2:?usage: sbatch --array=0-N grading/slurm.sh SUBMISSIONS OUT}
export HF_HUB_OFFLINE=1
exec .venv/bin/llmcourse-grade "$SUBMISSIONS" \
    --out "$OUT/shard-$SLURM_ARRAY_TASK_ID" \
    --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" \
    --seed-file "$OUT/seed" --jobs "$SLURM_CPUS_PER_TASK"
