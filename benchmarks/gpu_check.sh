#!/usr/bin/env bash
# The GPU check: one device call, at most about 6 minutes, that proves tinynet's GPU path and times it.
#
#     bash benchmarks/gpu_check.sh              # on a machine with an NVIDIA GPU, CuPy 14+ and CUDA PyTorch
#     bash benchmarks/gpu_check.sh --dry-run    # the same steps on the CPU (NumPy), tiny: 10-20 s; CI runs it
#
# Steps, in order; each one's exit status, seconds and last lines go in the report (rewritten after each step,
# so that a run the device tool cuts short keeps what it measured), with a "Done when" section that gives each of
# issue 19's criteria its measured value, its limit and PASS or FAIL; a failing step does not stop the later ones,
# and the exit status is 1 if any step failed:
#   1. install  what the device lacks, from .carry/wheels (nothing if it is all importable already); where pip
#               refuses, into /tmp/tinynet-gpu-check-site, and without pip the wheels unzipped there
#   2. suite    the whole test suite on cupy: TINYNET_TEST_BACKENDS=cupy python -m pytest (4 workers with
#               pytest-xdist where installed), less tests/test_backend_parity.py (step 3),
#               tests/test_gpu_check.py (which runs this script), the browser test, and
#               tests/test_kernel_sources_on_the_cpu.py (the kernels' C run on the CPU: not what a GPU is for)
#   3. parity   tests/test_backend_parity.py: NumPy and CuPy from the same seed and initial weights, 100 steps
#               unshuffled, the losses equal to float32 rounding
#   4. mnist    examples/mnist.py --device gpu, 5 epochs
#   5. seed     benchmarks/seed_workload.py --device gpu --floor --check-graph --kernel-times: first the
#               quick diagnostics: tinynet's graph against its eager step (200 steps, bit-identical) and the
#               nodes of one captured step by kind (10 kernels expected for this model, counted on the CPU by
#               tests/test_cupy_path_on_the_cpu.py), then each kernel of the step timed inside a graph (the
#               products at several split-K targets, gemm.BUSY_BLOCKS); then tinynet on CuPy (its CUDA graph) against PyTorch's
#               CUDA graph and PyTorch eager on the same GPU, in the same run, at batch 32 (5 epochs), 128 and
#               512 (3 epochs), and at batch 32 tinynet-nosplit (split-K off) and tinynet-k8 (eight steps per
#               graph); and the matrix products alone
# The dry run: install only checks imports; suite runs tests/test_backend.py and tests/test_relu.py on numpy;
# parity only collects (on strict it takes ~40 s on 2 cores, and CI's suite runs it anyway); mnist runs
# 1 epoch at batch 512 on the CPU; seed runs 1 epoch of 1,024 images on the CPU at batch 32 and 128, with
# tinynet-nosplit, tinynet-k8, torch-graph (eager replays: the CPU has no CUDA graphs) and the graph check (both
# eager on the CPU); the kernel times say they are measured on a GPU only.
#
# Where things are:
#   $OUT              the report (report.md), one log per step (N-step.log) and the suite's results (suite.xml,
#                     JUnit); default: a new temporary folder
#   MNIST             $TINYNET_DATA_DIR if set (and only there), else .carry/mnist, shared/data/mnist,
#                     ../shared/data/mnist; a step that needs it fails, saying so, when it is missing
#   $PYTHON           the interpreter (default python3: on the device, the one with PyTorch and CuPy)
#   GPU_CHECK_WORKERS the suite's pytest-xdist workers (default 4; 0: one process)
#   GPU_CHECK_TIMEOUTS  seconds per step, "install suite parity mnist seed" (default "45 120 45 40 110": 6 minutes
#                     at most, plus the report; a step past its limit gets SIGINT, then SIGKILL 10 s later)
#
# With the device tool (see its README): the device has Python 3.12, CuPy 14.2, NumPy 2.5, Numba, pytest,
# matplotlib, Pillow and PyTorch with CUDA, and no package index; ../shared does not travel. So first, here:
#     bash benchmarks/gpu_carry.sh                 # .carry/: wheels of what the device lacks, and MNIST
# then one device call (the command runs in the repository root, with $OUT set):
#     run(command="bash benchmarks/gpu_check.sh", carry=[".carry"], timeout_s=420)
# and read report.md among the files that come back.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
for arg in "$@"; do
    case $arg in
        --dry-run) DRY=1 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$arg' (use --dry-run, or --help)" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
export OUT=${OUT:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$OUT"
REPORT=$OUT/report.md
SITE=/tmp/tinynet-gpu-check-site  # where the install step falls back to
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
read -r T_INSTALL T_SUITE T_PARITY T_MNIST T_SEED <<<"${GPU_CHECK_TIMEOUTS:-45 120 45 40 110}"

# --- MNIST ----------------------------------------------------------------------------------
MNIST_FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
if [ -n "${TINYNET_DATA_DIR:-}" ]; then CANDIDATES=("$TINYNET_DATA_DIR"); else
    CANDIDATES=(.carry/mnist shared/data/mnist ../shared/data/mnist); fi
DATA=""
for folder in "${CANDIDATES[@]}"; do
    complete=1
    for name in $MNIST_FILES; do [ -f "$folder/$name" ] || complete=0; done
    if [ $complete = 1 ]; then DATA=$(cd "$folder" && pwd -P); break; fi  # -P: links resolved
done
if [ -n "$DATA" ]; then
    export TINYNET_DATA_DIR=$DATA
    DATA_LINE="found in $DATA"
else
    DATA_LINE="**MISSING**: none of ${CANDIDATES[*]} holds the four files (set TINYNET_DATA_DIR, or run benchmarks/gpu_carry.sh and carry .carry); the steps that need it fail, and the suite's MNIST tests skip"
fi

# --- the steps ----------------------------------------------------------------------------------
if [ $DRY = 1 ]; then
    MODE="dry run on the CPU (NumPy), tiny sizes"
    export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}  # a check, not a timing: quick on a busy CI machine too
    INSTALL="$PY -c 'import array_api_compat, array_api_strict, numpy, numba, matplotlib, PIL, pytest; print(\"dry run: everything imports; nothing installed\")'"
    SUITE="TINYNET_TEST_BACKENDS=numpy $PY -m pytest -q -rfEs -p no:cacheprovider --junitxml=\"\$OUT/suite.xml\" tests/test_backend.py tests/test_relu.py"
    PARITY="TINYNET_TEST_BACKENDS=numpy,strict $PY -m pytest -q -p no:cacheprovider --collect-only tests/test_backend_parity.py"
    MNIST="$PY examples/mnist.py --device cpu --epochs 1 --batch-size 512 --seed 0 --data-dir \"\$TINYNET_DATA_DIR\""
    SEED="$PY benchmarks/seed_workload.py --device cpu --systems tinynet,torch-graph,torch,tinynet-nosplit,tinynet-k8 --batch-sizes 32,128 --epochs 1 --limit 1024 --floor --check-graph --kernel-times --data-dir \"\$TINYNET_DATA_DIR\""
else
    MODE="on the GPU"
    # into the interpreter's own environment; if that is refused, into $SITE (added to PYTHONPATH below)
    # without pip at all: the wheels unzipped into $SITE (a wheel is a zip of what site-packages gets)
    UNZIP="$PY -c 'import glob, sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in glob.glob(\".carry/wheels/*.whl\")]' $SITE"
    INSTALL="if $PY -c 'import array_api_compat, array_api_strict, nbclient, nbformat, ipykernel, xdist' 2>/dev/null; then echo 'everything imports: nothing to install'; elif [ ! -f .carry/requirements.txt ]; then echo '.carry/wheels missing: run benchmarks/gpu_carry.sh here, and name .carry in the device call carry'; exit 1; else $PY -m pip install --no-index --find-links .carry/wheels -r .carry/requirements.txt || { echo 'refused: installing into $SITE instead'; $PY -m pip install --no-index --no-deps --target $SITE .carry/wheels/*.whl || { echo 'no pip: unzipping the wheels into $SITE'; $UNZIP; }; }; fi"
    # left out: the parity test (step 3), this script's own test, and the browser test (the device has no
    # Chromium, and the page runs on the CPU: CI runs that one)
    SUITE="TINYNET_TEST_BACKENDS=cupy OPENBLAS_NUM_THREADS=4 $PY -m pytest -q -rfEs --durations=10 -p no:cacheprovider --junitxml=\"\$OUT/suite.xml\" @XDIST@ --ignore=tests/test_backend_parity.py --ignore=tests/test_gpu_check.py --ignore=tests/test_draw_browser.py --ignore=tests/test_kernel_sources_on_the_cpu.py tests"
    PARITY="TINYNET_TEST_BACKENDS=cupy $PY -m pytest -q -rfEs -p no:cacheprovider tests/test_backend_parity.py"
    MNIST="$PY examples/mnist.py --device gpu --epochs 5 --data-dir \"\$TINYNET_DATA_DIR\""
    SEED="$PY benchmarks/seed_workload.py --device gpu --floor --check-graph --kernel-times --data-dir \"\$TINYNET_DATA_DIR\""
fi

ROWS="" DETAILS="" FAILED=0 N=0
step() {  # step NAME SECONDS NEEDS_MNIST COMMAND
    local name=$1 limit=$2 needs_mnist=$3 command=$4 rc result start seconds
    N=$((N + 1))
    local log="$OUT/$N-$name.log"
    echo "\$ $command" >"$log"
    start=$(date +%s.%N)
    if [ "$needs_mnist" = 1 ] && [ -z "$DATA" ]; then
        echo "not run: the MNIST data is missing ($DATA_LINE)" >>"$log"
        rc=2 result="FAILED: MNIST data missing"
    else
        # SIGINT first: Python stops with a traceback of where it was, pytest with its summary so far
        timeout --signal=INT --kill-after=10 "$limit" bash -c "$command" >>"$log" 2>&1 </dev/null
        rc=$?
        case $rc in
            0) result="ok" ;;
            124|137) result="FAILED: timed out after $limit s" ;;
            *) result="FAILED" ;;
        esac
    fi
    seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    [ $rc = 0 ] || FAILED=$((FAILED + 1))
    echo "$N. $name: $result (exit status $rc, $seconds s)"
    ROWS+="| $N. $name | $rc | $seconds | $result |"$'\n'
    DETAILS+=$'\n'"### $N. $name: $result"$'\n\n'"\`\`\`"$'\n'"$(head -n 1 "$log")"$'\n'"$(tail -n +2 "$log" | tail -n 15)"$'\n'"\`\`\`"$'\n'
}

# --- the report: written after each step, so that a run cut short still leaves what it measured ----------------
environment() {
    timeout 60 "$PY" - 2>&1 <<'EOF'
import platform, sys
print(f"- Python {platform.python_version()} ({sys.executable}); {platform.machine()}, {__import__('os').cpu_count()} cores")
for name in ("numpy", "numba", "array_api_compat", "array_api_strict", "xdist"):
    try:
        print(f"- {name} {__import__(name).__version__}")
    except Exception as error:
        print(f"- {name}: not importable ({type(error).__name__})")
try:
    import cupy
    print(f"- CuPy {cupy.__version__}: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
except Exception as error:
    print(f"- CuPy: no GPU through CuPy ({type(error).__name__}: {error})")
try:
    import torch
    print(f"- PyTorch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
except Exception as error:
    print(f"- PyTorch: not importable ({type(error).__name__})")
EOF
}

done_when() {  # issue 19's "Done when", each with its limit, from the logs and suite.xml so far
    OUT="$OUT" DRY=$DRY "$PY" - 2>&1 <<'EOF'
import os, re, xml.etree.ElementTree as ElementTree
from pathlib import Path
out, dry = Path(os.environ["OUT"]), os.environ["DRY"] == "1"
def log(name):
    found = sorted(out.glob(f"*-{name}.log"))
    return found[0].read_text(errors="replace") if found else None
lines = []
try:
    every = list(ElementTree.parse(out / "suite.xml").iter("testcase"))  # a list: one name can be in two files
except (OSError, ElementTree.ParseError):
    every = None
if every is None:
    lines.append("- suite on cupy, 0 failed: not measured (no suite.xml: the suite did not finish)")
else:
    cases = {case.get("name"): case for case in every}  # by name: the two tests looked up below
    failed = sum(1 for case in every if case.find("failure") is not None or case.find("error") is not None)
    skipped = sum(1 for case in every if case.find("skipped") is not None)
    lines.append(f"- suite{' (dry run: two files on numpy)' * dry}, 0 failed: {failed} failed, {skipped} skipped of "
                 f"{len(every)}: {'PASS' if failed == 0 else 'FAIL'}")
    for what, name in (("GEMM kernels = cupy.matmul to 1e-5 (1x1x1, 33x785x17, 32x784x512, transposes)",
                        "test_the_kernels_equal_cupy_matmul_on_a_gpu[cupy]"),
                       ("a NaN mid-epoch stops fit naming the step, weights rolled back",
                        "test_a_nan_mid_epoch_stops_fit_naming_its_step_and_rolls_the_epoch_back[cupy]")):
        case = cases.get(name)
        result = ("not run" if case is None else "FAIL" if case.find("failure") is not None
                  or case.find("error") is not None else "skipped" if case.find("skipped") is not None else "PASS")
        lines.append(f"- {what}: {result} ({name})")
mnist = log("mnist")
accuracy = mnist and re.findall(r"validation accuracy (\d\.\d+)", mnist)
seconds = mnist and re.findall(r"epoch seconds: (.*) \(mean", mnist)
if accuracy:
    value = float(accuracy[-1])
    verdict = "not judged (dry run: 1 epoch on the CPU)" if dry else "PASS" if value >= 0.975 else "FAIL"
    lines.append(f"- mnist.py --device gpu, val >= 0.975: {value:.4f}: {verdict}; "
                 f"epoch seconds: {seconds[-1] if seconds else 'NOT printed'}")
else:
    lines.append("- mnist.py --device gpu, val >= 0.975: not measured (no validation accuracy in its log)")
seed = log("seed") or ""
judged = [line for line in seed.splitlines() if "done when" in line]
lines += [f"- {line}" for line in judged] or ["- speed and graph vs eager: not measured (no verdict in the seed log)"]
print("\n".join(lines))
EOF
}

write_report() {
    {
        echo "# tinynet GPU check: $MODE"
        echo
        echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT, host $(hostname)"
        echo "- GPU (nvidia-smi): $GPU"
        echo "$ENVIRONMENT"
        echo "- MNIST: $DATA_LINE"
        echo
        echo "| step | exit status | seconds | result |"
        echo "| --- | --- | --- | --- |"
        printf '%s' "$ROWS"
        echo
        if [ $N -lt 5 ]; then echo "**$N of 5 steps done so far** (a report cut short: the run stopped here)."
        elif [ $FAILED = 0 ]; then echo "All $N steps passed."; else echo "**$FAILED of $N steps failed.**"; fi
        echo
        echo "## Done when (issue 19)"
        echo
        done_when
        echo "- the whole run within 6 minutes: $(awk -v s="$TOTAL" 'BEGIN { printf "%.0f s: %s", s, (s <= 360 ? "PASS" : "FAIL") }')"
        echo
        echo "## The steps: each command and the end of its log (the whole log: N-step.log beside this report)"
        printf '%s' "$DETAILS"
    } >"$REPORT.tmp" && mv "$REPORT.tmp" "$REPORT"
}

RUN_START=$(date +%s.%N) TOTAL=0
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi")
COMMIT=$(git rev-parse --short HEAD 2>/dev/null \
    || { [ -f .carry/commit ] && echo "$(cat .carry/commit) (when gpu_carry.sh made .carry: remake it for each commit)"; } \
    || echo "unknown (no .git, no .carry/commit)")
ENVIRONMENT="- (the environment: measured after the install step)"
report_step() {  # step NAME ... then the report rewritten
    step "$@"
    TOTAL=$(awk -v a="$RUN_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    write_report
}

report_step install "$T_INSTALL" 0 "$INSTALL"
[ -d "$SITE" ] && export PYTHONPATH="$PYTHONPATH:$SITE"
# pytest-xdist, where importable now (the device's, or the one the install step brought): GPU_CHECK_WORKERS
# workers, each file's tests in one
WORKERS=${GPU_CHECK_WORKERS:-4}
XDIST=$([ $DRY = 0 ] && [ "$WORKERS" != 0 ] && "$PY" -c 'import xdist' >/dev/null 2>&1 && echo "-n $WORKERS --dist loadfile")
SUITE=${SUITE/@XDIST@/$XDIST}
ENVIRONMENT=$(environment)
report_step suite "$T_SUITE" 0 "$SUITE"
report_step parity "$T_PARITY" 1 "$PARITY"
report_step mnist "$T_MNIST" 1 "$MNIST"
report_step seed "$T_SEED" 1 "$SEED"

echo
cat "$REPORT"
echo
echo "report and logs: $OUT"
[ $FAILED = 0 ]
