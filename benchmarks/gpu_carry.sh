#!/usr/bin/env bash
# Fills .carry/ (ignored by git) with what benchmarks/gpu_check.sh needs on the device machine and the
# device lacks. Run it here, where pip reaches a package index, before the device call:
#
#     bash benchmarks/gpu_carry.sh [MNIST_DIR]      # MNIST_DIR: default $TINYNET_DATA_DIR, else ../shared/data/mnist
#
# It writes
#   .carry/requirements.txt  tinynet's runtime and test requirements (pyproject.toml), less those the device
#                            image already has (numpy, matplotlib, numba, pillow, pytest);
#   .carry/wheels/           wheels of those and of everything they need, for CPython 3.12 on x86-64 Linux
#                            (the device's Python), less NumPy (the device has NumPy 2.5);
#   .carry/mnist/            the four MNIST .gz files (the ../shared beside a checkout does not travel).
# About 30 MB in all; the device tool carries at most 64 MiB. Then, in the device call, name it in carry:
#     command: bash benchmarks/gpu_check.sh      carry: [".carry"]      timeout_s: 420
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ON_DEVICE="numpy matplotlib numba pillow pytest"  # the device image's packages that tinynet uses

mkdir -p .carry
rm -rf .carry/wheels .carry/mnist
ON_DEVICE="$ON_DEVICE" "$PY" - >.carry/requirements.txt <<'EOF'
import os, re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
on_device = set(os.environ["ON_DEVICE"].split())
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
    if re.match(r"[A-Za-z0-9_.-]+", requirement).group().lower() not in on_device:
        print(requirement)
EOF
echo "requirements for the device: $(tr '\n' ' ' <.carry/requirements.txt)"
"$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    --dest .carry/wheels -r .carry/requirements.txt
rm -f .carry/wheels/numpy-*.whl  # the device's own NumPy stays

mnist=${1:-${TINYNET_DATA_DIR:-../shared/data/mnist}}
mkdir -p .carry/mnist
for name in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    cp "$mnist/$name" .carry/mnist/ || { echo "MNIST: $mnist/$name not found; pass the MNIST folder as the argument" >&2; exit 1; }
done
echo "ready: .carry ($(du -sh .carry | cut -f1)): $(ls .carry/wheels | wc -l) wheels, MNIST from $mnist"
