#!/usr/bin/env bash
# Prints the timelines of the scenarios that failed since STAMP (a file touched when the
# run started), each ending with its error: the last lines of a CI log, where they are seen.
set -euo pipefail
stamp="$1"
out="$(dirname "$0")/out"
found=0
while IFS= read -r -d '' timeline; do
    grep -qE '\| (\*\* )?FAILED: ' "$timeline" || continue
    found=1
    printf '\n--- failed: %s (last 25 lines) ---\n' "${timeline#"$out"/}"
    tail -n 25 "$timeline"
done < <(find "$out" -maxdepth 1 -name '*.txt' -newer "$stamp" -print0 | sort -z)
[ "$found" = 1 ] || echo "no timeline records a failure: see the test output above"
