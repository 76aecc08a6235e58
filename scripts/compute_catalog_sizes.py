"""Fill the catalog's unknown file sizes with sizes computed from each model's architecture.

For every quantization whose `size_bytes` is null, `app.synth_gguf.file_size_bytes` builds
the tensor table llama-quantize writes (exact tensor data) with a synthetic vocabulary
header; real files carry longer token strings, BPE merges and a chat template, so their
headers are a few MB larger (0.01-1 % of a small file). Published sizes are never replaced.
Split files get the total of all parts. Run after adding a model:

    .venv/bin/python scripts/compute_catalog_sizes.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.synth_gguf import ArchConfig, file_size_bytes  # noqa: E402

CATALOG = ROOT / "resources" / "catalog.json"


def main() -> int:
    """Rewrite resources/catalog.json with computed sizes where none is known."""
    document = json.loads(CATALOG.read_text())
    filled = 0
    for model in document["models"]:
        config = ArchConfig.from_dict(model["arch"])
        for quant in model["quants"]:
            if quant["size_bytes"] is None or quant["size_source"] == "computed":
                quant["size_bytes"] = file_size_bytes(config, quant["quant"])
                quant["size_source"] = "computed"
                filled += 1
    CATALOG.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"computed {filled} sizes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
