"""Stage `quality`: Great Expectations suites over every artifact -> static Data Docs + a metrics file.

Pandera (r1interp/schemas.py) remains the gate inside each stage; this stage is the report layer.
Failed expectations are reported, not fatal, unless `--strict` is given.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import time
from pathlib import Path

from r1interp import paths, stage, timings
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path, write_json

OUT = paths.QUALITY_DIR
METRICS = paths.QUALITY_METRICS


def add_args(parser):
    parser.add_argument("--strict", action="store_true", help="exit 2 when any expectation fails")


def main(params, args):
    from r1interp.quality import run_quality  # imports Great Expectations (~4 CPU-s)

    started = time.perf_counter()
    with atomic_path(OUT, directory=True) as tmp:
        summary = run_quality(Path("."), params, tmp)
    seconds = round(time.perf_counter() - started, 1)
    write_json(METRICS, summary)
    timings.record("quality", {"seconds": seconds})
    for name, entry in summary.items():
        if name == "overall":
            continue
        mark = "ok  " if entry["success"] else "FAIL"
        print(f"{mark} {name}: {entry['successful']}/{entry['evaluated']} expectations ({entry['artifact']})")
        for failed in entry["failed"]:
            print(f"       - {failed}")
        if entry.get("error"):
            print(f"       {entry['error']}")
    overall = summary["overall"]
    print(f"quality: {overall['passed']}/{overall['checks']} checks passed in {seconds} s -> {paths.QUALITY_INDEX}")
    if args.strict and not overall["success"]:
        raise ArtifactError(
            f"data quality: {overall['failed']} checks failed in {', '.join(overall['failed_suites'])}",
            hint=f"see {paths.QUALITY_INDEX}",
        )


if __name__ == "__main__":
    stage.run(main, add_args)
