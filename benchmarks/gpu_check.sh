#!/usr/bin/env bash
# One prepared GPU check for murakkab-lg (under 8 minutes): NVML inventory and energy counters, then
# measured vs profile-estimated energy for two randomly initialised decoders (no weights, no network).
#
# Needs: an NVIDIA GPU with its driver, and a python with torch (CUDA build), pydantic and
# nvidia-ml-py. PYTHON picks the interpreter (default: .venv/bin/python, else python3). Missing
# pydantic / nvidia-ml-py are pip-installed when a package index is reachable.
# Output: tables on stdout (markdown), JSON at ${OUT:-benchmarks/results}/gpu_check.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,memory.total,power.limit,mig.mode.current --format=csv || echo "nvidia-smi not found"
"$PY" - <<'PYEOF' || { echo "gpu_check: this python has no CUDA-enabled torch; set PYTHON=..." >&2; exit 2; }
import torch, sys
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF
"$PY" -c "import pydantic, pynvml" 2>/dev/null || "$PY" -m pip install --quiet "pydantic>=2.7" "nvidia-ml-py>=12" || true
OUT_DIR="${OUT:-$ROOT/benchmarks/results}"
timeout 470 "$PY" benchmarks/gpu_check.py --out "$OUT_DIR/gpu_check.json" "$@"
