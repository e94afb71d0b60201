# Shared by setup_recbole.sh and setup_rectools.sh (source it after setting VENV and defining check()):
# the Python that makes the venv, the --force / already-installed test, and a quiet pip.
# PIP_NOISE (an array of grep patterns) names more pip output lines to drop than this machine's index notes.
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

ensure_venv() {  # usage: ensure_venv "$@" — exits 0 when check() passes (unless --force), else makes the venv
  if [[ "${1:-}" != "--force" ]] && [[ -x "$VENV/bin/python" ]] && check; then
    echo "$VENV is up to date"
    exit 0
  fi
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
}

pipq() {  # pip install, minus the expected noise; returns pip's exit status
  local drop=(-e "is ignored: it is neither")
  for pattern in ${PIP_NOISE[@]+"${PIP_NOISE[@]}"}; do drop+=(-e "$pattern"); done
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v "${drop[@]}" || true; }
  return "${PIPESTATUS[0]}"
}
