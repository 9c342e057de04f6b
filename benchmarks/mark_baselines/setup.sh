#!/bin/bash
# Creates benchmarks/.venv-mark with the baseline watermarking libraries used by
# benchmarks/mark.py (invisible-watermark, blind-watermark) plus this project.
# torch is installed FIRST from the local CPU wheel so pip never resolves a CUDA build.
# Usage (from anywhere): bash benchmarks/mark_baselines/setup.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/benchmarks/.venv-mark"
python3 -m venv "$venv"
pip="$venv/bin/pip"
"$pip" install -q --upgrade pip >/dev/null 2>&1 || true
wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)
if [ -n "$wheel" ]; then
    "$pip" install -q "$wheel"
else
    "$pip" install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
# constraint keeps the CPU torch in place while the baselines resolve their dependencies
echo "torch==2.13.0" >"$venv/constraints.txt"
"$pip" install -q -c "$venv/constraints.txt" invisible-watermark blind-watermark
if [ -f "$root/pyproject.toml" ]; then
    "$pip" install -q -c "$venv/constraints.txt" -e "$root"
else
    "$pip" install -q -c "$venv/constraints.txt" numpy Pillow
fi
"$venv/bin/python" - <<'P'
import torch, imwatermark, blind_watermark
print("baselines ok: torch", torch.__version__, "cuda" if torch.version.cuda else "cpu")
P
