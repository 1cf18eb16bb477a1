"""Stage `report`: the static, offline HTML report site under reports/site/ (open reports/site/index.html).

Built atomically from whatever the pipeline has produced: missing inputs become "not built yet" boxes,
malformed ones fail the stage naming the file. The site is a hashed DVC output, so it holds nothing that
depends on the git history: the `dvc exp show` table (experiments and their commit times) is only added
when asked for (`python stages/report.py --experiments --out DIR`, outside `dvc repro`).
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import time

from r1interp import paths, stage, sweep
from r1interp.site import build_site

OUT = str(paths.SITE_DIR)


def add_args(parser):
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="add the `dvc exp show` table (depends on the git history: not for the DVC-tracked site)",
    )
    parser.add_argument("--out", default=OUT, help="where to write the site")


def main(params, args):
    started = time.perf_counter()
    exp_show = (lambda: sweep.exp_show_json(".")) if args.experiments else None
    summary = build_site(".", args.out, params, params_file=args.params, exp_show=exp_show)
    print(
        f"{summary.out}/index.html: {summary.pages} pages ({summary.feature_pages} feature pages, "
        f"{summary.graph_pages} graph viewers), {summary.bytes / 1e6:.1f} MB, built in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    stage.run(main, add_args)
