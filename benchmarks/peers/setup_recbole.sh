#!/usr/bin/env bash
# Create benchmarks/peers/.venv-recbole: RecBole 1.2.1 on the CPU build of torch 2.13.0, for recbole_run.py.
# Idempotent: does nothing when the venv already imports RecBole 1.2.1, torch 2.13.0 and numpy < 2 (--force
# reinstalls). Usage: bash benchmarks/peers/setup_recbole.sh [--force]
#
# Order matters:
# 1. torch==2.13.0 first, with that exact pin (here it resolves to the CPU wheel; an open spec can pull a
#    multi-GB CUDA build).
# 2. recbole==1.2.1 and thop with --no-deps: RecBole pins ray<=2.6.3 (imported only by recbole.quick_start, which
#    recbole_run.py does not use), and letting pip resolve RecBole's requirements together with setuptools<70
#    makes it backtrack to another torch (torch 2.13 declares setuptools>=77), i.e. a CUDA download.
# 3. what RecBole imports at run time, with numpy<2 and setuptools<70 (RecBole 1.2.1 predates numpy 2 and
#    pkg_resources' removal). pip then warns that torch wants setuptools>=77; torch does not need it to train.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-recbole"

check() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import warnings
warnings.filterwarnings("ignore")
import numpy, torch, recbole
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import get_model, init_logger, init_seed
assert recbole.__version__ == "1.2.1", recbole.__version__
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
assert int(numpy.__version__.split(".")[0]) < 2, numpy.__version__
print(f"recbole {recbole.__version__}, torch {torch.__version__}, numpy {numpy.__version__}")
PY
}

# shellcheck source=venv_lib.sh
source "$HERE/venv_lib.sh"
PIP_NOISE=("dependency resolver does not currently" "torch .* requires setuptools" "recbole .* requires ray")
ensure_venv "$@"
pipq "torch==2.13.0"
pipq --no-deps "recbole==1.2.1" "thop==0.1.1.post2209072238"
pipq "numpy<2" "setuptools<70" "pandas<3" "scipy" "tqdm" "colorlog==4.7.2" "colorama==0.4.4" \
  "scikit-learn" "pyyaml" "tensorboard" "tabulate" "plotly" "texttable" "psutil"
if ! check; then
  echo "error: $VENV does not import RecBole 1.2.1 with torch 2.13.0 and numpy<2" >&2
  exit 1
fi
