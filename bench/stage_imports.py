"""A stage process's start: importing what the model stages import, with and without r1interp's lean-imports
hook (r1interp/lean_imports.py: transformers without scikit-learn).

Each run is a fresh `python -c` (as DVC starts every stage), alternating baseline and ours `--repeats` times;
prints the median wall time of each and the ratio (ours / baseline).

    python bench/stage_imports.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

STAGE_IMPORTS = "from transformers import AutoTokenizer, Qwen2ForCausalLM\nimport pandas, datasets\n"
# the baseline drops the hook right after `import r1interp` registered it, so both pin the same numerics
BASELINE = (
    "import sys, r1interp\n"
    "from r1interp import lean_imports\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, lean_imports._TransformersWithoutSklearn)]\n"
    + STAGE_IMPORTS
)
OURS = "import r1interp\n" + STAGE_IMPORTS


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wall(OURS)  # warm the file cache and the .pyc files for both
    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(args.repeats):
        times["baseline"].append(wall(BASELINE))
        times["ours"].append(wall(OURS))
    base, ours = (statistics.median(times[k]) for k in ("baseline", "ours"))
    print(f"stage imports, median of {args.repeats}: baseline {base:.2f} s, ours {ours:.2f} s, ratio {ours / base:.2f}")


if __name__ == "__main__":
    main()
