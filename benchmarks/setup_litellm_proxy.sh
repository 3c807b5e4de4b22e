#!/usr/bin/env bash
# Build a private venv with the litellm proxy, for benchmarks/endpoint_throughput.py's comparison.
#
# Why by hand: `pip install "litellm[proxy]==$LITELLM_VERSION"` does not resolve from the package
# registry as-is. The extra pins `litellm-proxy==$LITELLM_VERSION` (not published; the proxy code and
# the `litellm` CLI already ship inside the `litellm` wheel), `litellm-proxy-extras==0.4.114.post1`
# and `litellm-enterprise==0.1.83.post1` (the registry has 0.4.110 and 0.1.82). So this script
# installs `litellm` itself plus the extra's other requirements, and the nearest published
# versions of those two sub-packages. It lives in its own venv so the project's stays clean.
#
# Usage: bash benchmarks/setup_litellm_proxy.sh [VENV_DIR]   (default /tmp/litellm-proxy-venv)
set -euo pipefail

VENV="${1:-/tmp/litellm-proxy-venv}"
LITELLM_VERSION="${LITELLM_VERSION:-1.110.2}"
PY="${PYTHON:-python3}"

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q \
  "litellm==$LITELLM_VERSION" \
  "litellm-proxy-extras==0.4.110" "litellm-enterprise==0.1.82" \
  "gunicorn>=23,<24" "uvicorn>=0.33,<1" "uvloop>=0.22.1,<1" "fastapi>=0.136.3,<1" "starlette>=1.0.1,<2" \
  "backoff>=2.2.1,<3" "pyyaml>=6.0.3,<7" "rq>=2.7,<3" "orjson>=3.11.6,<4" "apscheduler>=3.11.2,<4" \
  "fastapi-sso>=0.19,<1" "pyjwt>=2.13,<3" "python-multipart>=0.0.27,<1" "cryptography>=49,<51" \
  "pynacl>=1.6.2,<2" "websockets>=15.0.1,<16" "boto3>=1.43.117,<2" "azure-identity>=1.25.2,<2" \
  "azure-storage-blob>=12.28,<13" "mcp>=2.3,<3" "httpx2>=2.10,<3" "pydantic>=2.12,<3" "restrictedpython>=8.5,<9" \
  "rich>=13.9.4,<14" "inquirerpy>=0.3.4,<1" "tomlkit>=0.13.3,<1" "polars>=1.38.1,<2" "soundfile>=0.12.1,<1" \
  "expression>=5.6,<6" "backports-zstd>=1,<2; python_version < '3.14'" "semver>=3.0.4,<4" "hiredis>=3,<4" \
  "granian>=2.7.4,<3"
"$VENV/bin/litellm" --help >/dev/null
echo "litellm proxy ready: $VENV/bin/litellm (litellm $LITELLM_VERSION)"
