"""The `r1interp` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from r1interp import paths
from r1interp.errors import R1InterpError


def _params_check(args: argparse.Namespace) -> int:
    from r1interp.config import load_params

    params = load_params(args.file)
    print(f"{args.file}: ok (profile {params.model.profile})")
    return 0


def _params_write(args: argparse.Namespace) -> int:
    from r1interp.config import load_params, merge_override, write_params

    data = merge_override(args.override)
    path = write_params(data, args.out, override=args.override)
    params = load_params(path)  # the written file validates on its own
    source = f"defaults + {args.override}" if args.override else "defaults"
    print(f"{path}: written ({source}; profile {params.model.profile})")
    return 0


def _prompts_check(args: argparse.Namespace) -> int:
    from r1interp.prompts import load_prompts

    for path in args.files:
        prompts = load_prompts(path)
        cats = sorted({p.category for p in prompts})
        print(f"{path}: ok ({len(prompts)} prompts; categories: {', '.join(cats)})")
    return 0


def _sweep_pareto(args: argparse.Namespace) -> int:
    from r1interp import sweep

    points = sweep.points_from_exp_show(sweep.exp_show_json(args.repo))
    if not points:
        print("no experiment has transcoder metrics yet: run `dvc exp run --queue -S ...` then `dvc exp run --run-all`")
        return 1
    front = sweep.pareto_front(points)
    path = sweep.write_report(points, front, Path(args.repo) / args.out)
    for p in sorted(points, key=lambda p: (p.model, p.l0)):
        mark = "*" if p in front else " "
        print(
            f"{mark} {p.name:<24} {p.model:<9} CE+ {p.ce_increase:.4f}  L0 {p.l0:6.2f}  dead {p.dead_pct:5.1f}%  {p.params}"
        )
    print(f"Pareto front (*): {len(front)} of {len(points)} points -> {path}")
    return 0


def _sweep_apply(args: argparse.Namespace) -> int:
    from r1interp import sweep

    points = sweep.points_from_exp_show(sweep.exp_show_json(args.repo))
    chosen = [p for p in points if args.experiment in (p.name, p.rev) or p.rev.startswith(args.experiment)]
    if not chosen:
        names = ", ".join(sorted({p.name for p in points})) or "none"
        raise R1InterpError(f"no experiment named {args.experiment!r} with transcoder metrics; known: {names}")
    changed = sweep.apply(chosen[0].params, Path(args.repo) / args.params)
    print(
        f"{args.params}: "
        + (", ".join(f"train.{k} = {v}" for k, v in changed.items()) or "already matches")
        + f" (from {chosen[0].name})"
    )
    return 0


def _features_show(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from r1interp.autointerp.show import render_feature
    from r1interp.config import load_params
    from r1interp.models import model_spec, token_strings

    params = load_params(Path(args.repo) / "params.yaml")
    tokenizer = AutoTokenizer.from_pretrained(Path(args.repo) / model_spec(params.model.profile, args.model).local_dir)
    vocab = token_strings(tokenizer)
    threshold = params.labels.highlight_threshold
    print(render_feature(Path(args.repo), args.model, args.layer, args.feature, vocab, args.n, threshold))
    return 0


EPILOG = """\
common workflows:
  first run        r1interp doctor && dvc repro && r1interp status
  browse results   dvc repro report && r1interp serve          (http://127.0.0.1:8000/)
  release          r1interp publish --model reasoner --repo OWNER/NAME --dry-run   (then without --dry-run);
                   r1interp pull OWNER/NAME --revision SHA --model reasoner

`r1interp COMMAND --help` describes a command; --debug (anywhere, or R1INTERP_DEBUG=1) shows tracebacks.
"""

DEBUG_HINT = "re-run with --debug for the traceback"


def _group_usage(parser: argparse.ArgumentParser):
    """`r1interp sweep` without a subcommand: that group's help, exit 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def _add_group(sub, name: str, help: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    group = sub.add_parser(name, help=help, description=help)
    group.set_defaults(func=_group_usage(group))
    return group, group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1interp",
        description="Mechanistic interpretability of reasoning models: a DVC pipeline (organisms, transcoders,\n"
        "labels, attribution graphs, motifs, reasoning steps) and a release registry on the Hugging Face Hub.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks instead of one-line errors (also after the command; or R1INTERP_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    doctor = sub.add_parser(
        "doctor",
        help="check the environment (python, torch/CUDA, dvc, git, remote, disk, network, keys)",
        description="Check the environment; one line per check (ok / warn / fail) with a hint. "
        "Exit 1 when a check fails. Secrets are reported only as set / not set.",
    )
    doctor.add_argument("--repo", default=".", help="project folder (default: the current one)")
    doctor.add_argument("--timeout", type=float, default=3.0, help="seconds per network check (default 3)")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(func=_doctor)

    status = sub.add_parser(
        "status",
        help="what is built, stale and published (dvc status + dvc.lock + releases.yaml)",
        description="Summarise the pipeline (up to date / stale and why / never built), the releases "
        "recorded in releases.yaml and the report site.",
    )
    status.add_argument("--repo", default=".", help="project folder (default: the current one)")
    status.add_argument("--manifest", help="release manifest (default: releases.yaml at the project root)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=_status)

    serve = sub.add_parser(
        "serve",
        help=f"serve the report site ({paths.SITE_DIR}) on http://127.0.0.1:PORT/",
        description="Serve the static report site on 127.0.0.1 only; Ctrl-C stops it.",
    )
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--dir", default=str(paths.SITE_DIR), help=f"site folder (default {paths.SITE_DIR})")
    serve.add_argument("--quiet", action="store_true", help="do not log requests")
    serve.set_defaults(func=_serve)

    _, params_sub = _add_group(
        sub,
        "params",
        "`params check [FILE]`: validate params.yaml (types, ranges, combinations); "
        "`params write [--override FILE]`: write it from the defaults",
    )
    check = params_sub.add_parser("check", help="validate a params file (default params.yaml)")
    check.add_argument("file", nargs="?", default="params.yaml")
    check.set_defaults(func=_params_check)
    pwrite = params_sub.add_parser(
        "write",
        help="write a full params file: the defaults (r1interp/config.py) merged with an override",
        description="Write a full params file (every key, validated) = the defaults of r1interp/config.py deep-merged "
        "with an override file holding only the keys that differ (e.g. configs/thorough.yaml).",
    )
    pwrite.add_argument("--override", metavar="FILE", help="YAML mapping of the keys that differ from the defaults")
    pwrite.add_argument("--out", metavar="FILE", default="params.yaml", help="file to write (default params.yaml)")
    pwrite.set_defaults(func=_params_write)

    _, prompts_sub = _add_group(sub, "prompts", "`prompts check FILE...`: validate benchmark prompt sets")
    pcheck = prompts_sub.add_parser("check", help="validate prompt files")
    pcheck.add_argument("files", nargs="+")
    pcheck.set_defaults(func=_prompts_check)

    _, sweep_sub = _add_group(sub, "sweep", "`sweep pareto|apply`: transcoder sweeps run as DVC experiments")
    pareto = sweep_sub.add_parser("pareto", help="Pareto front of CE increase vs L0 (and dead %%) over experiments")
    pareto.add_argument("--repo", default=".")
    pareto.add_argument("--out", default=str(paths.SWEEP_DIR))
    pareto.set_defaults(func=_sweep_pareto)
    apply = sweep_sub.add_parser("apply", help="write an experiment's transcoder params into params.yaml")
    apply.add_argument("experiment", help="experiment name or revision")
    apply.add_argument("--repo", default=".")
    apply.add_argument("--params", default="params.yaml")
    apply.set_defaults(func=_sweep_apply)

    _, features_sub = _add_group(sub, "features", "`features show LAYER FEATURE`: inspect a transcoder feature")
    show = features_sub.add_parser("show", help="a feature's stats, label, scores and marked example windows")
    show.add_argument("layer", type=_index)
    show.add_argument("feature", type=_index)
    show.add_argument("--model", default="reasoner", choices=("reasoner", "base"))
    show.add_argument("-n", type=int, default=5, help="examples per kind")
    show.add_argument("--repo", default=".")
    show.set_defaults(func=_features_show)

    from r1interp.motifs.cli import add_parser as add_motifs_parser

    add_motifs_parser(sub)

    from r1interp.registry.cli import add_parsers as add_registry_parsers

    add_registry_parsers(sub)
    return parser


def _index(text: str) -> int:
    """A layer or feature number: what the activation tables can hold (int32), never negative."""
    value = int(text)
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be between 0 and {2**31 - 1}")
    return value


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be 0-65535 (0 picks a free port)")
    return port


def _doctor(args: argparse.Namespace) -> int:
    from r1interp import doctor

    return doctor.run(args)


def _status(args: argparse.Namespace) -> int:
    from r1interp import status

    return status.run(args)


def _serve(args: argparse.Namespace) -> int:
    from r1interp import serve

    return serve.run(args)


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Take `--debug` out of argv wherever it is (before a `--`), so it works before and after the command."""
    out, debug = [], False
    for i, arg in enumerate(argv):
        if arg == "--":
            out += argv[i:]
            break
        if arg == "--debug":
            debug = True
        else:
            out.append(arg)
    return out, debug


def _one_line(exc: BaseException) -> str:
    """A one-line description of an unexpected exception."""
    import subprocess

    if isinstance(exc, subprocess.CalledProcessError):
        cmd = exc.cmd if isinstance(exc.cmd, str) else " ".join(map(str, exc.cmd))
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
        return f"`{cmd}` failed with exit code {exc.returncode}" + (f": {last}" if last else "")
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scrub(text: str) -> str:
    """Secrets from the environment never reach the terminal, even inside an exception's message."""
    for var in ("HF_TOKEN", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def _fail(message: str, hint: str | None, code: int, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    message = " ".join(message.split()) if "\n" in message else message
    print(_scrub(f"error: {message}"), file=sys.stderr)
    if hint and not (debug and hint == DEBUG_HINT):
        print(_scrub(f"hint: {hint}"), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    debug = debug or os.environ.get("R1INTERP_DEBUG", "") not in ("", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return func(args)
    except R1InterpError as exc:
        return _fail(str(exc), exc.hint, 2, debug)
    except KeyboardInterrupt:
        return _fail("interrupted", None, 130, debug)
    except BrokenPipeError:  # `r1interp status | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
        except OSError:
            pass
        return 0
    except Exception as exc:
        return _fail(_one_line(exc), DEBUG_HINT, 1, debug)


if __name__ == "__main__":
    sys.exit(main())
