# Sourced by the benchmarks' run.sh scripts: one virtual environment per tool, created once.
#
# make_venv DIR PIP_ARGS... : create DIR with $PY (default python3.11) and `pip install PIP_ARGS`
# unless DIR/.complete exists; writes DIR/freeze.txt (what was really installed). On a failed
# install DIR is removed and the function returns non-zero (the caller decides: stop or skip).

make_venv() {
  local dir="$1"; shift
  [[ -f "$dir/.complete" ]] && return 0
  printf '[bench] creating %s (pip install %s)\n' "$dir" "$*" >&2
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  "${PY:-python3.11}" -m venv "$dir" || return 1
  if _pip "$dir" --upgrade pip setuptools wheel && _pip "$dir" "$@"; then
    "$dir/bin/python" -m pip freeze > "$dir/freeze.txt"
    touch "$dir/.complete"
    return 0
  fi
  rm -rf "$dir"
  return 1
}

# pip's "Location ... is ignored" lines come from this machine's extra local indexes: noise
_pip() {
  local dir="$1"; shift
  "$dir/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v 'is ignored\|BuildBackendWarning' || true; }
  return "${PIPESTATUS[0]}"
}
