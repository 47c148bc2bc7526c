#!/usr/bin/env bash
# Stop the Slurm that start.sh DIR started.
DIR=$1
for f in slurmd.job slurmctld.job; do
  [ -f "$DIR/$f" ] && kill "$(cat "$DIR/$f")" 2>/dev/null
done
[ -f "$DIR/munge/munged.pid" ] && kill "$(cat "$DIR/munge/munged.pid")" 2>/dev/null
exit 0
