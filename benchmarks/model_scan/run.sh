#!/usr/bin/env bash
# Model-scanning benchmark: Bastion against the open-source anchors.
#
#   bash benchmarks/model_scan/run.sh                 # corpus + bench
#   bash benchmarks/model_scan/run.sh --big           # also the ~1 GB checkpoints (throughput)
#   bash benchmarks/model_scan/run.sh --setup-only    # only create the virtual environments
#   bash benchmarks/model_scan/run.sh --skip-corpus   # reuse the corpus already on disk
#
# Every tool lives in its own virtual environment under benchmarks/model_scan/.venvs/<tool>,
# created only when missing (delete a folder to rebuild it). Versions are pinned so that
# results are comparable between runs; bump them deliberately.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENVS="$HERE/.venvs"
PY="${PYTHON:-python3.11}"
TORCH_PIN="torch==2.13.0"   # a CPU wheel of this release is on the machine's disk

MODELSCAN_PIN="modelscan[tensorflow,h5py]==0.8.8"
PICKLESCAN_PIN="picklescan==1.0.5"
FICKLING_PIN="fickling==0.1.12"
MODELAUDIT_PIN="modelaudit==0.2.54"

SETUP_ONLY=0
SKIP_CORPUS=0
CORPUS_ARGS=()
BENCH_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --setup-only) SETUP_ONLY=1 ;;
    --skip-corpus) SKIP_CORPUS=1 ;;
    --big) CORPUS_ARGS+=("--big"); BENCH_ARGS+=("--big") ;;
    *) BENCH_ARGS+=("$arg") ;;
  esac
done

log() { printf '[model_scan] %s\n' "$*" >&2; }

# shellcheck source=../venv.sh
source "$HERE/../venv.sh"

# The anchors. Torch is pinned wherever it is installed so pip takes the CPU wheel on disk
# instead of a multi-GB CUDA build. h5py lets the anchors that can read Keras HDF5 do so.
# modelscan's .npy scanner calls numpy.lib.format._check_version, which numpy 2.x no longer
# re-exports there (every .npy/.npz then ends in "nothing scanned"): keep it on numpy 1.26.
make_venv "$VENVS/modelscan" "$MODELSCAN_PIN" "numpy<2" "ml_dtypes<0.6"
# picklescan imports numpy for .npy/.npz but does not declare it.
make_venv "$VENVS/picklescan" "$PICKLESCAN_PIN" numpy
make_venv "$VENVS/fickling" "$FICKLING_PIN" "$TORCH_PIN"
make_venv "$VENVS/modelaudit" "$MODELAUDIT_PIN" h5py onnx safetensors "$TORCH_PIN"
# Bastion itself: an editable install of this repo, nothing else (it must not need frameworks to scan).
make_venv "$VENVS/bastion" -e "$ROOT"
# pip byte-compiles what it installs from a wheel, but never an editable source tree, and these
# machines set PYTHONDONTWRITEBYTECODE: compile it here as a wheel install would, or every Bastion
# process pays ~50 ms of compilation that the anchors (installed from wheels) never pay.
"$VENVS/bastion/bin/python" -m compileall -q "$ROOT/src" >/dev/null
# The corpus generator: the frameworks that *make* the benign models.
make_venv "$VENVS/corpus" "$TORCH_PIN" numpy scikit-learn joblib safetensors onnx h5py pandas

if [[ "$SETUP_ONLY" == 1 ]]; then
  log "venvs ready under $VENVS"
  exit 0
fi

if [[ "$SKIP_CORPUS" == 0 ]]; then
  "$VENVS/corpus/bin/python" "$HERE/corpus.py" ${CORPUS_ARGS[@]+"${CORPUS_ARGS[@]}"}
fi
"$VENVS/corpus/bin/python" "$HERE/bench.py" ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}
