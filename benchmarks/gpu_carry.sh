#!/usr/bin/env bash
# Fills .carry/ (ignored by git) with what benchmarks/gpu_check.sh needs on the device machine and the
# device lacks. Run it here, where pip reaches a package index, before the device call:
#
#     bash benchmarks/gpu_carry.sh [MNIST_DIR]      # MNIST_DIR: default $TINYNET_DATA_DIR, else ../shared/data/mnist
#
# It writes
#   .carry/requirements.txt  tinynet's runtime and test requirements (pyproject.toml), less those the device
#                            image already has (numpy, matplotlib, numba, pillow, pytest) and those the check
#                            never uses there (selenium: the browser test is left out; nvidia-cuda-nvrtc-cu12,
#                            90 MB: CuPy brings its own NVRTC), plus pytest-xdist (the suite's workers);
#   .carry/wheels/           wheels of those and of everything they need, for CPython 3.12 on x86-64 Linux
#                            (the device's Python), less NumPy (the device has NumPy 2.5);
#   .carry/mnist/            the four MNIST .gz files (the ../shared beside a checkout does not travel);
#   .carry/commit            the commit checked (the device gets the working tree without .git).
# About 25 MB in all; the device tool carries at most 64 MiB (the script fails above 60 MiB).
# --requirements: print the requirements for the device and stop (no download). Then, in the device call, name it in carry:
#     command: bash benchmarks/gpu_check.sh      carry: [".carry"]      timeout_s: 420
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ON_DEVICE="numpy matplotlib numba pillow pytest"  # the device image's packages that tinynet uses
NOT_THERE="selenium nvidia-cuda-nvrtc-cu12"  # the browser test is left out there; CuPy has its own NVRTC
EXTRA="pytest-xdist"  # gpu_check.sh's suite runs on 4 workers with it (in one process, too slow for its limit)

requirements() {
    SKIP="$ON_DEVICE $NOT_THERE" EXTRA="$EXTRA" "$PY" - <<'EOF'
import os, re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
skip = set(os.environ["SKIP"].split())
for requirement in project["dependencies"] + project["optional-dependencies"]["test"] + os.environ["EXTRA"].split():
    if re.match(r"[A-Za-z0-9_.-]+", requirement).group().lower() not in skip:
        print(requirement)
EOF
}
if [ "${1:-}" = --requirements ]; then requirements; exit; fi

mkdir -p .carry
rm -rf .carry/wheels .carry/mnist
requirements >.carry/requirements.txt
echo "requirements for the device: $(tr '\n' ' ' <.carry/requirements.txt)"
"$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    --dest .carry/wheels -r .carry/requirements.txt
for name in $ON_DEVICE; do  # the device's own stay (--target would otherwise put these before them)
    rm -f .carry/wheels/"$name"-*.whl .carry/wheels/"${name^}"-*.whl; done

mnist=${1:-${TINYNET_DATA_DIR:-../shared/data/mnist}}
mkdir -p .carry/mnist
for name in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    cp "$mnist/$name" .carry/mnist/ || { echo "MNIST: $mnist/$name not found; pass the MNIST folder as the argument" >&2; exit 1; }
done
git rev-parse --short HEAD >.carry/commit 2>/dev/null || echo unknown >.carry/commit
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then  # not | grep -q: pipefail + SIGPIPE
    sed -i 's/$/ (with uncommitted changes)/' .carry/commit; fi
size=$(du -sm .carry | cut -f1)
if [ "$size" -gt 60 ]; then
    echo ".carry is $size MiB: the device tool carries at most 64 MiB with the working tree; biggest wheels:" >&2
    ls -S .carry/wheels | head -5 >&2
    exit 1
fi
echo "ready: .carry ($(du -sh .carry | cut -f1)): $(ls .carry/wheels | wc -l) wheels, MNIST from $mnist"
