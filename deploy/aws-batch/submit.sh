#!/usr/bin/env bash
# Submit a backfill to AWS Batch (job definition: job-definition.yaml): plan, then the map
# array job (N children), then the reduce array job (M children) depending on the whole map
# array, then commit depending on the whole reduce array. A plain dependency on an array job
# waits for every child to succeed; failed children are retried by the definition's
# retryStrategy (same index: a finished shard exits 0 at once).
#
# A child that still fails fails the jobs that depend on it. Recovery: run this script again
# with the same arguments: the plan is resumed (not refused) and the shards that are done exit
# 0 at once.
#
#   deploy/aws-batch/submit.sh QUEUE INVENTORY STAGING WAREHOUSE CATALOG [N=64] [M=16]
#
# Resources of every job: VCPUS (default 2) and MEMORY in MiB (default 2048), overriding the
# job definition's; ITEMS_ROOT records an items root in the plan.
set -euo pipefail
QUEUE=$1 INVENTORY=$2 STAGING=$3 WAREHOUSE=$4 CATALOG=$5 N=${6:-64} M=${7:-16}
DEF=earthcatalog-backfill

submit() { # name, depends-on job id (or ""), array size (or ""), command...
  local name=$1 after=$2 size=$3; shift 3
  local overrides
  # `--args --`: the command's own --flags are arguments, not jq options.
  overrides=$(jq -cn --arg vcpus "${VCPUS:-2}" --arg memory "${MEMORY:-2048}" \
    '{command: $ARGS.positional, resourceRequirements: [{type: "VCPU", value: $vcpus},
      {type: "MEMORY", value: $memory}]}' --args -- "$@")
  local args=(--job-name "$name" --job-queue "$QUEUE" --job-definition "$DEF"
    --container-overrides "$overrides")
  [ -n "$after" ] && args+=(--depends-on "jobId=$after")
  [ -n "$size" ] && args+=(--array-properties "size=$size")
  aws batch submit-job "${args[@]}" --query jobId --output text
}

ROOT=()
[ -n "${ITEMS_ROOT:-}" ] && ROOT=(--items-root "$ITEMS_ROOT")
plan=$(submit backfill-plan "" "" earthcatalog backfill plan --inventory "$INVENTORY" \
  --staging "$STAGING" --warehouse "$WAREHOUSE" --catalog "$CATALOG" \
  --map-shards "$N" --reduce-shards "$M" "${ROOT[@]}")
map=$(submit backfill-map "$plan" "$N" earthcatalog backfill map --staging "$STAGING")
reduce=$(submit backfill-reduce "$map" "$M" earthcatalog backfill reduce --staging "$STAGING")
commit=$(submit backfill-commit "$reduce" "" earthcatalog backfill commit --staging "$STAGING")
echo "plan $plan  map $map  reduce $reduce  commit $commit"
