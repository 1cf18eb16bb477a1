"""DVC's own start-up on this repository: `dvc status` with ruamel.yaml's C parser (ruamel.yaml.clib, a
dependency) vs its pure-Python parser.

DVC reads params.yaml once per stage and dvc.yaml / dvc.lock once per command with ruamel.yaml's "safe" loader,
which uses the C parser when ruamel.yaml.clib is installed. Each run is a fresh process, alternating baseline
(the pure parser forced) and ours `--repeats` times; prints the median wall time of each and the ratio.

    python bench/dvc_yaml.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DVC_STATUS = "from dvc.cli import main\nraise SystemExit(main(['status', '-q']))\n"
PURE = (  # dvc imports ruamel.yaml.YAML when it parses: hand it one that always takes the pure-Python parser
    "import ruamel.yaml\n"
    "class PureYAML(ruamel.yaml.YAML):\n"
    "    def __init__(self, *args, **kwargs):\n"
    "        super().__init__(*args, **{**kwargs, 'pure': True})\n"
    "ruamel.yaml.YAML = PureYAML\n"
)


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "DVC_NO_ANALYTICS": "1"}, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from ruamel.yaml import YAML

    parser_class = YAML(typ="safe").Parser.__name__
    if parser_class != "CParser":
        raise SystemExit(f"ruamel.yaml uses {parser_class}, not the C parser: pip install ruamel.yaml.clib")
    wall(DVC_STATUS)  # warm the file cache
    times: dict[str, list[float]] = {"pure": [], "clib": []}
    for _ in range(args.repeats):
        times["pure"].append(wall(PURE + DVC_STATUS))
        times["clib"].append(wall(DVC_STATUS))
    pure, clib = (statistics.median(times[k]) for k in ("pure", "clib"))
    print(
        f"dvc status, median of {args.repeats}: pure-Python YAML {pure:.2f} s, C parser {clib:.2f} s, "
        f"ratio {clib / pure:.2f}"
    )


if __name__ == "__main__":
    main()
