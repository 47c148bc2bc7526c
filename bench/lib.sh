# Helpers the bench scripts share (`source "$(dirname "$0")/lib.sh"`).

median_ms() { # command... → median wall ms of 11 runs (its output discarded)
  local t=()
  for _ in $(seq 11); do
    local s; s=$(date +%s%N); "$@" > /dev/null 2>&1; t+=($(( ($(date +%s%N) - s) / 1000000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 6p
}
