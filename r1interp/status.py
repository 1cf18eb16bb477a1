"""`r1interp status`: what is built, what is stale, what is published.

Pipeline stages come from DVC itself (the stage list and graph of `dvc.yaml`, `dvc status` for what changed),
outputs from `dvc.lock` (which stages were ever built, and whether their outputs are on disk), releases from
`releases.yaml`. A stage is

- `up to date`: in `dvc.lock`, nothing changed (and nothing upstream is stale);
- `stale`: a dependency, parameter or the command changed since it was built, or a stage it depends on is stale;
- `outputs missing` / `outputs modified`: built and unchanged, but its outputs are not in the workspace
  (`dvc pull` or `dvc checkout`) or were edited by hand;
- `never built`: not in `dvc.lock`.

`dvc status` takes the repo lock; while another DVC command (a `dvc repro`) holds it, the report falls back to
what `dvc.lock` says and names the reason (`dvc_status_error`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from r1interp import paths
from r1interp.errors import R1InterpError

SITE_INDEX = paths.SITE_INDEX
MAX_CHANGES_SHOWN = 4

UP_TO_DATE, STALE, NEVER_BUILT, OUTS_MISSING, OUTS_MODIFIED, ALWAYS = (
    "up to date",
    "stale",
    "never built",
    "outputs missing",
    "outputs modified",
    "always runs",
)
BUILT = "built"  # when `dvc status` could not run: in dvc.lock, outputs present
ORDER = (UP_TO_DATE, BUILT, ALWAYS, STALE, OUTS_MISSING, OUTS_MODIFIED, NEVER_BUILT)


@dataclass
class StageStatus:
    name: str
    state: str
    changes: list[str] = field(default_factory=list)  # "dep X modified", "param a.b modified", "command changed"
    upstream: list[str] = field(default_factory=list)  # stale / never-built stages this one depends on
    outs: list[dict[str, Any]] = field(default_factory=list)  # {"path", "present"}


@dataclass
class Report:
    root: str
    stages: list[StageStatus]
    releases: list[dict[str, Any]]
    releases_file: str
    releases_error: str | None = None
    dvc_status_error: str | None = None
    site: str | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stages:
            out[s.state] = out.get(s.state, 0) + 1
        return {k: out[k] for k in ORDER if k in out}

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts()
        return d


# ---------------------------------------------------------------------------- collecting


def _changes(entries: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """`dvc status` entries of one stage -> (dependency/param/command changes, output changes, other notes)."""
    inputs, outputs, notes = [], [], []
    for entry in entries:
        if isinstance(entry, str):  # "changed command", "always changed", "changed checksum"
            (notes if entry == "always changed" else inputs).append(entry.replace("changed command", "command changed"))
            continue
        for kind, items in entry.items():
            if kind == "changed deps":
                for path, what in items.items():
                    if isinstance(what, dict):  # a params file: {key: modified|new|deleted}
                        inputs += [f"param {key} {how}" for key, how in what.items()]
                    else:
                        inputs.append(f"dep {path} {what}")
            elif kind == "changed outs":
                outputs += [f"out {path} {what}" for path, what in items.items()]
            else:
                inputs.append(f"{kind}: {items}")
    return inputs, outputs, notes


def _lock_entries(dvcfile: Path, cache: dict[Path, dict]) -> dict[str, Any]:
    lock = dvcfile.with_name("dvc.lock")
    if lock not in cache:
        try:
            doc = yaml.safe_load(lock.read_text()) if lock.exists() else {}
        except yaml.YAMLError as exc:
            raise R1InterpError(
                f"{lock}: not valid YAML ({exc})", hint="restore it with `git checkout dvc.lock`"
            ) from None
        cache[lock] = (doc or {}).get("stages") or {}
    return cache[lock]


def collect(root: str | Path = ".", manifest: str | Path | None = None) -> Report:
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.lock import LockError
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise R1InterpError(
            f"{Path(root).resolve()} is not inside a DVC project",
            hint="cd into the project checkout (the folder with dvc.yaml and .dvc/), or pass --repo",
        ) from None
    with repo:
        top = Path(repo.root_dir)
        try:
            stages = [s for s in repo.index.stages if getattr(s, "cmd", None)]
            graph = repo.index.graph
        except DvcException as exc:
            raise R1InterpError(
                f"dvc could not read the pipeline: {exc}", hint="fix dvc.yaml (`dvc status` shows the same error)"
            ) from None
        status_error = None
        try:
            status = repo.status()
        except LockError:
            status, status_error = (
                None,
                "the repo is locked by another DVC command (a running `dvc repro`?); showing dvc.lock only",
            )
        except DvcException as exc:
            status, status_error = None, f"dvc status failed: {exc}"

        locks: dict[Path, dict] = {}
        by_stage: dict[Any, StageStatus] = {}
        for stage in stages:
            base = Path(stage.dvcfile.path).parent
            dvcfile = Path(stage.dvcfile.path).relative_to(top)
            # dvc's own addressing is relative to the working directory; ours to the project root.
            name = stage.name if str(dvcfile) == "dvc.yaml" else f"{dvcfile}:{stage.name}"
            entry = _lock_entries(Path(stage.dvcfile.path), locks).get(stage.name)
            if entry is None:
                outs = [str(o.def_path) for o in stage.outs]
            else:
                outs = [o["path"] for o in entry.get("outs") or []]
            present = [{"path": str((base / p).relative_to(top)), "present": (base / p).exists()} for p in outs]
            st = StageStatus(name, UP_TO_DATE, outs=present)
            if entry is None:
                st.state = NEVER_BUILT
            elif status is None:
                st.state = BUILT if all(o["present"] for o in present) else OUTS_MISSING
            else:
                inputs, outputs, notes = _changes(status.get(stage.addressing, []))
                st.changes = inputs + outputs
                if inputs:
                    st.state = STALE
                elif outputs:
                    st.state = OUTS_MODIFIED if all(c.endswith(" modified") for c in outputs) else OUTS_MISSING
                elif notes:
                    st.state = ALWAYS
            by_stage[stage] = st

        import networkx as nx

        for stage, st in by_stage.items():
            ups = [by_stage[s] for s in nx.descendants(graph, stage) if s in by_stage]
            st.upstream = sorted(u.name for u in ups if u.state in (STALE, NEVER_BUILT))
            if st.upstream and st.state in (UP_TO_DATE, BUILT):
                st.state = STALE
                st.changes.append("upstream stale: " + ", ".join(st.upstream))

    manifest = Path(manifest) if manifest else top / "releases.yaml"
    releases, releases_error = [], None
    try:
        from r1interp.registry.manifest import read_manifest

        releases = [
            {k: r.get(k) for k in ("name", "kind", "repo_id", "revision", "tag", "published_at")}
            for r in read_manifest(manifest)
        ]
    except R1InterpError as exc:
        releases_error = str(exc)
    site = top / SITE_INDEX
    return Report(
        str(top),
        list(by_stage.values()),
        releases,
        str(manifest),
        releases_error,
        status_error,
        str(site) if site.is_file() else None,
    )


# ---------------------------------------------------------------------------- rendering


def _rel(path: str, root: str) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def render(report: Report) -> str:
    counts = report.counts()
    total = len(report.stages)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no stages"
    lines = [f"pipeline: {total} stage{'s' * (total != 1)} in {report.root}: {summary}"]
    if report.dvc_status_error:
        lines.append(f"  note: {report.dvc_status_error}")
    width = max([len(s.name) for s in report.stages] + [5])
    for s in report.stages:
        detail = ""
        if s.state == STALE:
            shown = s.changes[:MAX_CHANGES_SHOWN]
            more = len(s.changes) - len(shown)
            detail = "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")
        elif s.state in (OUTS_MISSING, OUTS_MODIFIED):
            bad = [o["path"] for o in s.outs if not o["present"]] if s.state == OUTS_MISSING else []
            detail = ("missing: " + ", ".join(bad)) if bad else "; ".join(s.changes[:MAX_CHANGES_SHOWN])
        elif s.outs:
            detail = ", ".join(o["path"] for o in s.outs[:3]) + (
                f" (+{len(s.outs) - 3} more)" if len(s.outs) > 3 else ""
            )
        lines.append(f"  {s.state:<16} {s.name:<{width}}  {detail}".rstrip())

    todo = [s.name for s in report.stages if s.state in (STALE, NEVER_BUILT)]
    missing = [s.name for s in report.stages if s.state == OUTS_MISSING]
    if todo:
        lines.append(
            f"  next: `dvc repro` rebuilds {len(todo)} stage{'s' * (len(todo) != 1)} ({', '.join(todo[:6])}"
            f"{', ...' if len(todo) > 6 else ''})"
        )
    if missing:
        lines.append(f"  next: `dvc pull` (or `dvc checkout`) restores the outputs of {', '.join(missing)}")

    manifest = _rel(report.releases_file, report.root)
    if report.releases_error:
        lines.append(f"releases: {report.releases_error}")
    elif not report.releases:
        lines.append(
            f"releases: none in {manifest} (publish with `r1interp publish --model reasoner --repo OWNER/NAME`)"
        )
    else:
        lines.append(f"releases: {len(report.releases)} in {manifest}")
        name_w = max(len(str(r.get("name"))) for r in report.releases)
        for r in report.releases:
            rev = (r.get("revision") or "?")[:12]
            tag = f" ({r['tag']})" if r.get("tag") else ""
            when = f"  published {r['published_at']}" if r.get("published_at") else ""
            lines.append(f"  {r.get('kind') or '?':<8} {r['name']:<{name_w}}  {r['repo_id']}@{rev}{tag}{when}")
    if report.site:
        lines.append(f"site: {_rel(report.site, report.root)} (browse it with `r1interp serve`)")
    else:
        lines.append(f"site: not built ({SITE_INDEX} is missing; build it with `dvc repro report`)")
    return "\n".join(lines)


def run(args) -> int:
    report = collect(args.repo, args.manifest)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(render(report))
    return 0
