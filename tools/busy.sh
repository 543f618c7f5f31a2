#!/usr/bin/env bash
# Runs a command while N other processes keep the CPUs busy, as a shared CI machine is:
#   bash tools/busy.sh [-n N] -- COMMAND [ARGS...]
# N CPU burners (default: one per core) run at normal priority for as long as COMMAND
# does and are stopped when it ends, however it ends. The exit code is COMMAND's.
# For example, the whole suite under load, three times in a row:
#   for k in 1 2 3; do bash tools/busy.sh -- bash tools/test.sh || break; done
set -euo pipefail
n=$(nproc)
if [ "${1:-}" = "-n" ]; then n=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ] || ! [[ "$n" =~ ^[0-9]+$ ]]; then
  echo "usage: bash tools/busy.sh [-n N] -- COMMAND [ARGS...]" >&2
  exit 2
fi
burners=()
stop() { [ ${#burners[@]} -eq 0 ] || kill "${burners[@]}" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM
for ((k = 0; k < n; ++k)); do
  bash -c 'while :; do :; done' &
  burners+=($!)
done
echo "busy: $n CPU burners running beside: $*" >&2
"$@"
