#!/usr/bin/env bash
# Run the stages of backfill.yaml in order: each Job is created only after the previous one
# completed (every index of it). Needs kubectl and yq (v4). Meanwhile
# `earthcatalog backfill status --staging $STAGING` shows per-shard progress.
#
# A failure shows as a Job with the Failed condition (an index that failed backoffLimitPerIndex
# times). Recovery: run this script again. A stage whose Job completed is skipped, a failed
# Job is deleted and created again (the plan Job resumes its plan; indexes that are done exit 0
# at once).
set -euo pipefail
FILE="$(dirname "$0")/backfill.yaml"

wait_job() {
  while true; do
    state=$(kubectl get job "$1" -o jsonpath='{.status.conditions[?(@.status=="True")].type}')
    case "$state" in
      *Complete*) return 0 ;;
      *Failed*) echo "job $1 failed: see kubectl describe job $1" >&2; return 1 ;;
    esac
    sleep 30
  done
}

yq 'select(.kind != "Job")' "$FILE" | kubectl apply -f -
for stage in plan map reduce commit; do
  job="earthcatalog-$stage"
  state=$(kubectl get job "$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' \
    2>/dev/null || true)
  case "$state" in
    *Complete*) continue ;;
    *Failed*) kubectl delete job "$job" --wait=true ;;
  esac
  yq "select(.kind == \"Job\" and .metadata.name == \"$job\")" "$FILE" | kubectl apply -f -
  wait_job "$job"
done
