#!/usr/bin/env bash
# Signing benchmark: Bastion vs OpenSSF model-signing on the same data, with raw hashlib as the limit.
#
#   bash benchmarks/signing/run.sh                  # 2 GB file + 2,000 small files, sign + verify
#   BENCH_CORPUS=/tmp/sigcorpus bash benchmarks/signing/run.sh   # put the corpus elsewhere
#   BIG_MB=512 bash benchmarks/signing/run.sh       # smaller big file (quick check)
#   ROUNDS=5 bash benchmarks/signing/run.sh         # more timed rounds (medians; default 3)
#
# On a shared machine read the "all-core hashlib" and "CPU eff." columns too: the first is what the
# cores actually gave this process during the run, the second does not depend on other load.
#
# The venv (.venvs/signing) holds model-signing (pinned) and an editable Bastion; it is created once.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-python3.11}"
VENV="$HERE/.venvs/signing"
MODEL_SIGNING_PIN="model-signing==1.1.1"

# shellcheck source=../venv.sh
source "$HERE/../venv.sh"
# pyopenssl: model-signing 1.1.1 imports it without declaring it
make_venv "$VENV" "$MODEL_SIGNING_PIN" pyopenssl cryptography SQLAlchemy -e "$ROOT"

mkdir -p "$HERE/results"
"$VENV/bin/python" "$HERE/bench.py" --corpus "${BENCH_CORPUS:-$HERE/corpus}" --big-mb "${BIG_MB:-2048}" \
  --rounds "${ROUNDS:-3}" --results "$HERE/results"
