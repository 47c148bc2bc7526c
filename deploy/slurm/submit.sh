#!/usr/bin/env bash
# Submit a backfill to Slurm: plan → map array (N tasks) → reduce array (M tasks) → commit,
# each stage starting only after every task of the previous one succeeded
# (--dependency=afterok on the whole array). A task retries its stage itself (backfill.sbatch,
# RETRIES). A task that still fails cancels the later stages (--kill-on-invalid-dep); the one
# recovery step is to run this script again with the same arguments and STAGING: the plan is
# resumed, every shard that is done exits 0 at once, and the rest run.
#
#   STAGING=s3://... deploy/slurm/submit.sh INVENTORY WAREHOUSE CATALOG [N=64] [M=16]
#
# Items outside S3: ITEMS_ROOT=/shared/items (recorded in the plan; tasks need only STAGING).
# Resources of every task: CPUS (default 2), MEM (2G), TIME (24:00:00).
set -euo pipefail
: "${STAGING:?export STAGING=s3://bucket/prefix}"
INVENTORY=$1 WAREHOUSE=$2 CATALOG=$3 N=${4:-64} M=${5:-16}
JOB="$(dirname "$0")/backfill.sbatch"
export STAGING
RES=(--cpus-per-task="${CPUS:-2}" --mem="${MEM:-2G}" --time="${TIME:-24:00:00}")
ROOT=()
[ -n "${ITEMS_ROOT:-}" ] && ROOT=(--items-root "$ITEMS_ROOT")

CHAIN=(--kill-on-invalid-dep=yes)
plan=$(sbatch --parsable --export=ALL "${RES[@]}" --output=backfill-plan-%j.log "$JOB" plan \
  --inventory "$INVENTORY" --warehouse "$WAREHOUSE" --catalog "$CATALOG" \
  --map-shards "$N" --reduce-shards "$M" "${ROOT[@]}")
map=$(sbatch --parsable --export=ALL "${RES[@]}" "${CHAIN[@]}" --dependency=afterok:$plan \
  --array=0-$((N - 1)) "$JOB" map)
reduce=$(sbatch --parsable --export=ALL "${RES[@]}" "${CHAIN[@]}" --dependency=afterok:$map \
  --array=0-$((M - 1)) "$JOB" reduce)
commit=$(sbatch --parsable --export=ALL "${RES[@]}" "${CHAIN[@]}" --output=backfill-commit-%j.log \
  --dependency=afterok:$reduce "$JOB" commit)
echo "plan $plan  map $map  reduce $reduce  commit $commit"
