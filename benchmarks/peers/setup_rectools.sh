#!/usr/bin/env bash
# Create benchmarks/peers/.venv-rectools: RecTools 0.19.0 (SASRecModel, BERT4RecModel on pytorch-lightning) on
# the CPU build of torch 2.13.0, for the RecTools peer runs. Idempotent: does nothing when the venv already
# imports them (--force reinstalls). Usage: bash benchmarks/peers/setup_rectools.sh [--force]
#
# torch==2.13.0 goes first, with that exact pin (here it resolves to the CPU wheel; rectools[torch] alone would
# let pip pick a multi-GB CUDA build). rectools[torch] then finds torch satisfied (it allows torch < 3).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${RECTOOLS_VENV:-$HERE/.venv-rectools}"

check() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import warnings
warnings.filterwarnings("ignore")
import torch, rectools
from rectools.models import BERT4RecModel, SASRecModel
assert rectools.__version__ == "0.19.0", rectools.__version__
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
print(f"rectools {rectools.__version__}, torch {torch.__version__}")
PY
}

# shellcheck source=venv_lib.sh
source "$HERE/venv_lib.sh"
ensure_venv "$@"
pipq "torch==2.13.0"
pipq "rectools[torch]==0.19.0"
if ! check; then
  echo "error: $VENV does not import RecTools 0.19.0 with torch 2.13.0" >&2
  exit 1
fi
