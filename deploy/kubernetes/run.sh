#!/usr/bin/env bash
# Run the stages of backfill.yaml in order: each Job is created only after the previous one
# completed (every index of it). Needs kubectl and yq (v4). Meanwhile
# `earthcatalog backfill status --staging $STAGING` shows per-shard progress.
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
  yq "select(.kind == \"Job\" and .metadata.name == \"earthcatalog-$stage\")" "$FILE" \
    | kubectl apply -f -
  wait_job "earthcatalog-$stage"
done
