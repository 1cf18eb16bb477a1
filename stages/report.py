"""Stage `report`: the static, offline HTML report site under reports/site/ (open reports/site/index.html).

Built atomically from whatever the pipeline has produced: missing inputs become "not built yet" boxes,
malformed ones fail the stage naming the file. The experiments table runs `dvc exp show --json`
(skip it with --no-experiments; it reads every commit, which takes a while in a long history).
"""

import time

from r1interp import stage, sweep
from r1interp.site import build_site

OUT = "reports/site"


def add_args(parser):
    parser.add_argument("--no-experiments", action="store_true", help="do not run `dvc exp show` for the experiments table")
    parser.add_argument("--out", default=OUT, help="where to write the site")


def main(params, args):
    started = time.perf_counter()
    exp_show = None if args.no_experiments else (lambda: sweep.exp_show_json("."))
    summary = build_site(".", args.out, params, params_file=args.params, exp_show=exp_show)
    print(f"{summary.out}/index.html: {summary.pages} pages ({summary.feature_pages} feature pages, "
          f"{summary.graph_pages} graph viewers), {summary.bytes / 1e6:.1f} MB, built in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    stage.run(main, add_args)
