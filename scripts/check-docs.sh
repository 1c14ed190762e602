#!/usr/bin/env bash
# Checks the repository's Markdown: every relative link points to a file that exists (and,
# with a #fragment into a Markdown file, to a heading there, by GitHub's slug rules), and
# nothing points outside the repository to documents a clone does not have. Run by
# `make lint`; prints each broken link and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

# GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes.
slugs() {
  grep -E '^#{1,6} ' "$1" | sed -E 's/^#+ +//; s/[[:space:]]+$//' | tr 'A-Z' 'a-z' |
    sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}

fail=0
while IFS= read -r md; do
  dir=$(dirname "$md")
  # Inline links and images: ](target) — code spans and fenced blocks removed first.
  while IFS= read -r target; do
    case "$target" in
      http://* | https://* | mailto:*) continue ;;
    esac
    path=${target%%#*}
    frag=""
    [[ "$target" == *#* ]] && frag=${target#*#}
    if [[ -z "$path" ]]; then
      file="$md"
    else
      file="$dir/$path"
      if [[ ! -e "$file" ]]; then
        echo "$md: broken link ($target): $file does not exist"
        fail=1
        continue
      fi
    fi
    if [[ -n "$frag" && "$file" == *.md ]] && ! slugs "$file" | grep -qxF -- "$frag"; then
      echo "$md: broken link ($target): no heading #$frag in $file"
      fail=1
    fi
  done < <(sed '/^```/,/^```/d' "$md" | sed -E 's/`[^`]*`//g' | grep -oE '\]\([^) ]+\)' | sed -E 's/^\]\(//; s/\)$//' || true)
done < <(git ls-files --cached --others --exclude-standard '*.md')

# The project stands on its own: no pointers to documents outside the repository.
if git grep --untracked -nE '\.\./shared/|/work/shared' -- ':!scripts/check-docs.sh'; then
  echo "the lines above point outside the repository; link docs/ instead"
  fail=1
fi
exit $fail
