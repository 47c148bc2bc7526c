#!/usr/bin/env bash
# Run the stages of backfill.yaml in order: each stage's Job is created only after the previous
# one completed (every index of it). Needs only kubectl. Meanwhile
# `earthcatalog backfill status --staging $STAGING` shows per-shard progress.
#
#   deploy/kubernetes/run.sh [MANIFEST=backfill.yaml beside this script]
#
# Transient failures are retried by Kubernetes: a failed pod's index runs again, up to
# backoffLimitPerIndex times (a refusal, exit 2, fails the Job at once).
# A failure shows as a Job with the Failed condition, and this script exits 1 naming it.
# Recovery, the one step: run this script again. A stage whose Job completed is skipped, a
# failed Job is deleted and created again (the plan Job resumes its plan; indexes that are done
# exit 0 at once).
set -euo pipefail
FILE=${1:-"$(dirname "$0")/backfill.yaml"}
POLL=${POLL:-30}

condition() {
  kubectl get job "$1" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' \
    2>/dev/null || true
}

kubectl apply -f "$FILE" -l earthcatalog.io/stage=setup
for stage in plan map reduce commit; do
  job="earthcatalog-$stage"
  case "$(condition "$job")" in
    *Complete*) echo "$job: complete, skipped"; continue ;;
    *Failed*) kubectl delete job "$job" --wait=true ;;
  esac
  kubectl apply -f "$FILE" -l "earthcatalog.io/stage=$stage"
  while true; do
    case "$(condition "$job")" in
      *Complete*) break ;;
      *Failed*)
        echo "job $job failed (kubectl describe job $job); to resume, run: $0 $*" >&2
        exit 1 ;;
    esac
    sleep "$POLL"
  done
done
