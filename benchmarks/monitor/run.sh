#!/usr/bin/env bash
# Drift-monitoring benchmark: Bastion against Evidently, alibi-detect, NannyML and whylogs.
#
#   bash benchmarks/monitor/run.sh                        # 100k and 1M rows, every tool
#   bash benchmarks/monitor/run.sh --rows 100000,1000000,5000000
#   bash benchmarks/monitor/run.sh --tools bastion,evidently --rows 100000
#   bash benchmarks/monitor/run.sh --setup-only           # only create the virtual environments
#
# Every anchor lives in its own virtual environment under benchmarks/monitor/.venvs/<tool>, created only
# when missing (delete a folder to rebuild it). Bastion runs from the repository's own .venv. Data is
# generated once per size under benchmarks/monitor/corpus/ (Parquet), results go to results/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENVS="$HERE/.venvs"
PY="${PYTHON:-python3.11}"
BASTION_PY="${BASTION_PY:-$ROOT/.venv/bin/python}"

EVIDENTLY_PIN="evidently==0.7.23"
ALIBI_PIN="alibi-detect==0.13.0"
NANNYML_PIN="nannyml==0.13.1"
WHYLOGS_PIN="whylogs[viz]==1.6.4"
COMMON_PINS=("pyarrow>=15" "psutil>=5.9")

SETUP_ONLY=0
BENCH_ARGS=()
TOOLS="bastion,evidently,alibi-detect,nannyml,whylogs"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --setup-only) SETUP_ONLY=1 ;;
    --tools) TOOLS="${args[$((i + 1))]}"; BENCH_ARGS+=("--tools" "$TOOLS"); i=$((i + 1)) ;;
    *) BENCH_ARGS+=("${args[$i]}") ;;
  esac
done

log() { printf '[monitor-bench] %s\n' "$*" >&2; }

# shellcheck source=../venv.sh
source "$HERE/../venv.sh"

[[ ",$TOOLS," == *",evidently,"* ]] && make_venv "$VENVS/evidently" "$EVIDENTLY_PIN" "pandas<3" "${COMMON_PINS[@]}"
[[ ",$TOOLS," == *",alibi-detect,"* ]] && make_venv "$VENVS/alibi-detect" "$ALIBI_PIN" "pandas<3" "pyarrow>=15,<19" "psutil>=5.9"
[[ ",$TOOLS," == *",nannyml,"* ]] && make_venv "$VENVS/nannyml" "$NANNYML_PIN" "statsmodels" "pandas<3" "${COMMON_PINS[@]}"
[[ ",$TOOLS," == *",whylogs,"* ]] && make_venv "$VENVS/whylogs" "$WHYLOGS_PIN" "pandas<3" "${COMMON_PINS[@]}"
if [[ $SETUP_ONLY == 1 ]]; then
  log "virtual environments ready under $VENVS"
  exit 0
fi

"$BASTION_PY" -m pip show psutil >/dev/null 2>&1 || log "note: psutil missing in $BASTION_PY (peak memory read from resource)"
exec "$BASTION_PY" "$HERE/bench.py" --venvs "$VENVS" "${BENCH_ARGS[@]}"
