"""docs/tutorial.md names a feature and quotes numbers: they must be what the built artifacts give.

Two kinds of checks:

- always (CI has what git tracks: docs/ and reports/): every claim that a git-tracked file under reports/
  (or the README) can settle — the chosen feature's rank, row and label in the carry ranking, cluster ids,
  sizes, purity and ARI, motif shares, ablation / steering / edit / fine-tune accuracies — plus the tutorial's
  own consistency (the prose quotes the console blocks it shows; every command names the same feature).
  Each claim is a small regex tied to its sentence: editing the number in the tutorial, rewording the sentence
  away, or a changed artifact fails the claim by name.
- with the DVC artifacts (data/, models/: after `dvc repro` or `dvc pull`): the tutorial's console commands
  and Python snippets are re-run and their output compared with the blocks it shows (`...` skips lines), and
  the feature is checked to be the highest-ranked one in the carry prompts' think graphs. Without them these
  skip, saying what to build. The ablation snippet (about 1.5 min on 2 cores) is also marked `slow`.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = Path("docs/tutorial.md")
RANKED = Path("reports/interventions/ranked_features.csv")
RESULTS = Path("reports/interventions/results.csv")
INTERVENTIONS = Path("reports/metrics/interventions.json")
CLUSTERS = Path("reports/metrics/clusters.json")
TAXONOMY = Path("reports/clusters/taxonomy.json")
MOTIFS = Path("reports/metrics/motifs.json")
DIFFERENCES = Path("reports/motifs/compare/differences.csv")
README = Path("README.md")
GRAPHS = Path("data/graphs/reasoner")
# sparsify's notice on stdout where Triton is missing (the CPU install): shown in the tutorial, optional in a rerun
NOTICES = {"Triton not installed, using eager implementation of sparse decoder."}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}


# ---------------------------------------------------------------------------------------------------------------
# the tutorial, parsed


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    line: int  # 1-based line of the opening fence


class Tutorial:
    def __init__(self, text: str):
        self.text = text

    @cached_property
    def blocks(self) -> list[Block]:
        out, lines, i = [], self.text.splitlines(), 0
        while i < len(lines):
            m = re.match(r"^```(\S*)\s*$", lines[i])
            if not m:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            out.append(Block(m.group(1), "\n".join(lines[i + 1 : end]), i + 1))
            i = end + 1
        return out

    @cached_property
    def prose(self) -> str:
        """Everything outside code blocks, whitespace collapsed (sentences wrap anywhere)."""
        text = re.sub(r"^```.*?^```\s*$", " ", self.text, flags=re.S | re.M)
        return re.sub(r"\s+", " ", text)

    def console(self, command_start: str) -> tuple[str, list[str]]:
        """The console block whose command starts with `command_start`: (command, output lines)."""
        found = [b for b in self.blocks if b.lang == "console" and b.body.startswith(f"$ {command_start}")]
        assert len(found) == 1, (
            f"tutorial: expected one console block running `{command_start} ...`, found {len(found)}"
        )
        first, *rest = found[0].body.splitlines()
        return first[2:], rest

    def snippets(self) -> list[tuple[Block, Block]]:
        """(python block, the plain block right after it that shows its output)."""
        pairs = []
        for a, b in zip(self.blocks, self.blocks[1:], strict=False):
            if a.lang == "python" and b.lang == "":
                pairs.append((a, b))
        return pairs

    def snippet(self, marker: str) -> tuple[Block, Block]:
        found = [(code, out) for code, out in self.snippets() if marker in code.body]
        assert len(found) == 1, (
            f"tutorial: expected one Python snippet containing {marker!r} with an output block, found {len(found)}"
        )
        return found[0]

    def one(self, claim: str, pattern: str) -> re.Match:
        """The one match of `pattern` in the prose (whitespace collapsed: a line break in a sentence is one space)."""
        matches = list(re.finditer(pattern, self.prose))
        assert len(matches) == 1, (
            f"tutorial claim '{claim}': expected its sentence once, found {len(matches)} "
            f"(pattern {pattern!r}) — reworded? update tests/test_tutorial.py with it"
        )
        return matches[0]

    def table(self, header_start: str) -> dict[str, list[str]]:
        """A markdown table (first column -> the other cells), found by the start of its header row."""
        lines = self.text.splitlines()
        start = next(i for i, l in enumerate(lines) if l.startswith(f"| {header_start}"))
        rows = {}
        for line in lines[start + 2 :]:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        return rows

    @cached_property
    def feature(self) -> tuple[int, int, int]:
        """(layer, feature, rank) of the feature the tutorial follows."""
        m = self.one(
            "chosen feature", r"Feature (?P<f>\d+) of layer (?P<l>\d+) ranks (?P<rank>\d+)(?P<suffix>st|nd|rd|th) there"
        )
        rank = int(m["rank"])
        assert m["rank"] + m["suffix"] == ordinal(rank), f"tutorial claim 'chosen feature': {m['rank']}{m['suffix']}?"
        return int(m["l"]), int(m["f"]), rank


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def f2(x: float) -> str:
    return f"{float(x):.2f}"


def f3(x: float) -> str:
    return f"{float(x):.3f}"


def word(a: float, b: float, below: str, equal: str, above: str, tolerance: float = 0.0) -> str:
    """The word the prose uses for how `a` compares with `b` (equal: the same, or closer than `tolerance`)."""
    return equal if a == b or abs(a - b) < tolerance else below if a < b else above


def same(claim: str, source: str, said: dict[str, str], actual: dict[str, str]) -> None:
    wrong = {k: (said[k], actual[k]) for k in actual if said[k] != actual[k]}
    assert not wrong, f"tutorial claim '{claim}' disagrees with {source}: " + "; ".join(
        f"{k}: tutorial says {s!r}, artifact gives {a!r}" for k, (s, a) in wrong.items()
    )


# ---------------------------------------------------------------------------------------------------------------
# the artifacts (git-tracked ones under reports/, and the README)


class Reports:
    def __init__(self, root: Path):
        self.root = root

    def json(self, path: Path) -> dict:
        return json.loads((self.root / path).read_text())

    def csv(self, path: Path) -> list[dict[str, str]]:
        with open(self.root / path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    @cached_property
    def ranked(self) -> list[dict[str, str]]:
        return self.csv(RANKED)

    @cached_property
    def taxonomy(self) -> dict[int, dict]:
        return {c["cluster"]: c for c in self.json(TAXONOMY)["clusters"]}

    def row(self, layer: int, feature: int) -> dict[str, str]:
        found = [x for x in self.ranked if (int(x["layer"]), int(x["feature"])) == (layer, feature)]
        assert found, f"{RANKED} has no row for feature {layer}/{feature}"
        return found[0]

    def results(self, intervention: str, group: str, size: float | None = None, draw: int | None = None) -> list[dict]:
        rows = [
            r
            for r in self.csv(RESULTS)
            if r["intervention"] == intervention and r["group"] == group and r["model"] == "reasoner"
        ]
        if size is not None:
            rows = [r for r in rows if float(r["size"]) == size]
        if draw is not None:
            rows = [r for r in rows if int(r["draw"]) == draw]
        return rows

    def cell(self, intervention: str, group: str, size: float | None = None, draw: int = 0) -> str:
        rows = self.results(intervention, group, size, draw)
        assert len(rows) == 1, f"{RESULTS}: {len(rows)} rows for {intervention} size {size} draw {draw} {group}"
        r = rows[0]
        return f"{f2(r['accuracy'])} [{f2(r['ci_low'])}, {f2(r['ci_high'])}]"

    def by(self, key: str, value: float, entries: list[dict]) -> dict:
        found = [e for e in entries if e[key] is not None and float(e[key]) == value]
        assert len(found) == 1, f"{INTERVENTIONS}: {len(found)} entries with {key} {value}"
        return found[0]


# ---------------------------------------------------------------------------------------------------------------
# claims checked in CI (tutorial text vs git-tracked files); each raises AssertionError naming itself

CLAIMS: dict[str, Callable[[Tutorial, Reports], None]] = {}


def claim(fn):
    CLAIMS[fn.__name__] = fn
    return fn


@claim
def feature_rank(t: Tutorial, r: Reports):
    layer, feature, rank = t.feature
    row = r.ranked[rank - 1]
    same("feature rank", RANKED, {"row": f"{layer}/{feature}"}, {"row": f"{row['layer']}/{row['feature']}"})


@claim
def feature_means(t: Tutorial, r: Reports):
    m = t.one(
        "feature means",
        r"\(mean activation (?P<target>[\d.]+) on the carry steps against (?P<contrast>[\d.]+) on plain column sums\)",
    )
    row = r.row(*t.feature[:2])
    same(
        "feature means",
        RANKED,
        m.groupdict(),
        {"target": f2(row["mean_in_target"]), "contrast": f2(row["mean_in_contrast"])},
    )


@claim
def feature_label(t: Tutorial, r: Reports):
    layer, feature, rank = t.feature
    command, out = t.console("r1interp features show")
    assert shlex.split(command)[3:5] == [str(layer), str(feature)], (
        f"tutorial claim 'feature label': `{command}` shows another feature"
    )
    assert out[0].startswith(f"reasoner layer {layer} feature {feature}:"), (
        f"tutorial claim 'feature label': {out[0]!r}"
    )
    label = next(l for l in out if l.startswith("label ("))
    said = label.split("): ", 1)[1]
    same("feature label", RANKED, {"label": said}, {"label": r.row(layer, feature)["label"]})


@claim
def ranking_top_rows(t: Tutorial, r: Reports):
    m = t.one("ranking top rows", r"The first (?P<n>\d+) rows of that ranking are all labeled `(?P<label>[^`]+)`")
    n = int(m["n"])
    labels = [row["label"] for row in r.ranked]
    starting = [i for i, l in enumerate(labels) if not l.startswith(m["label"])]
    same(
        "ranking top rows",
        RANKED,
        {"first rows with that label": str(n)},
        {"first rows with that label": str(starting[0] if starting else len(labels))},
    )
    assert t.feature[2] > n, "tutorial claim 'ranking top rows': the chosen feature is among them"


@claim
def ranking_split(t: Tutorial, r: Reports):
    m = t.one(
        "ranking split",
        r"carry clusters — C(?P<t1>\d+) and C(?P<t2>\d+), (?P<target_steps>\d+) column sums with a carry — "
        r"against the clusters of plain column sums, C(?P<c1>\d+) and C(?P<c2>\d+) \((?P<contrast_steps>\d+) steps\)",
    )
    info = r.json(INTERVENTIONS)["feature_ranking"]
    assert len(info["target_clusters"]) == 2 and len(info["contrast_clusters"]) == 2, (
        f"tutorial claim 'ranking split': {INTERVENTIONS} ranks {info['target_clusters']} against {info['contrast_clusters']}"
    )
    same(
        "ranking split",
        INTERVENTIONS,
        m.groupdict(),
        {
            "t1": str(info["target_clusters"][0]),
            "t2": str(info["target_clusters"][1]),
            "target_steps": str(info["target_steps"]),
            "c1": str(info["contrast_clusters"][0]),
            "c2": str(info["contrast_clusters"][1]),
            "contrast_steps": str(info["contrast_steps"]),
        },
    )
    assert info["target_step_type"] == "column_sum_carry" and info["contrast_step_type"] == "column_sum"


@claim
def every_command_names_the_feature(t: Tutorial, r: Reports):
    layer, feature, _ = t.feature
    f = f"{layer}_{feature}"
    body = "\n".join(b.body for b in t.blocks)
    expected = [
        f"r1interp features show {layer} {feature} ",
        f"grep -l '\"{f}_' ",
        f"--node {f} ",
        f'startswith("{f}_")',
        f"column = {layer} * 1024 + {feature} ",
        f'("{layer}/{feature} alone", {{{layer}: [{feature}]}})',
    ]
    missing = [e for e in expected if e not in body]
    assert not missing, f"tutorial claim 'every command names the feature {layer}/{feature}': not found {missing}"
    others = set(re.findall(r"\b(\d+)/(\d+)(?= alone| among| is as| is mostly| appears)", t.prose))
    assert others <= {(str(layer), str(feature))}, (
        f"tutorial claim 'every command names the feature': prose also names {others}"
    )


@claim
def graphs_listed(t: Tutorial, r: Reports):
    m = t.one(
        "graphs listed",
        r"appears in the think graphs of the (?P<think>\w+) prompts whose first column carries — the (?P<carry>\w+) "
        r"carry prompts and the 4-digit additions (?P<ood>ood-\d+ and ood-\d+) — and in no other graph \(no "
        r"carry-free, multiplication or answer graph\)",
    )
    _, out = t.console("grep -l")
    names = [Path(p).name for p in out]
    think = [n for n in names if n.endswith("-think.json")]
    same(
        "graphs listed",
        "the tutorial's grep block",
        {
            "think": str(NUMBER_WORDS[m["think"]]),
            "carry": str(NUMBER_WORDS[m["carry"]]),
            "ood": m["ood"],
            "all": "think",
        },
        {
            "think": str(len(think)),
            "carry": str(sum("-carry-" in n for n in think)),
            "ood": " and ".join(re.findall(r"ood-\d+", " ".join(n for n in think if "-ood-" in n))),
            "all": "think" if names == think else f"also {sorted(set(names) - set(think))}",
        },
    )


@claim
def graph_node_and_target(t: Tutorial, r: Reports):
    layer, feature, _ = t.feature
    m = t.one(
        "graph node and target",
        r"the prompt is `(?P<a>\d+)\+(?P<b>\d+)`, the target is the first token of the first "
        r"column's result \(`(?P<x>\d)\+(?P<y>\d)=` -> `(?P<sum>\d+)`: the `(?P<carry>\d)` that is the "
        r"carry\), and the node `(?P<node>[\d_]+)` sits on that `=`",
    )
    code, out = t.snippet('json.load(open("data/graphs/')
    lines = out.body.splitlines()
    assert f"What is {m['a']}+{m['b']}?" in lines[0], (
        f"tutorial claim 'graph node and target': the snippet shows {lines[0]!r}"
    )
    assert m["x"] == m["a"][-1] and m["y"] == m["b"][-1] and int(m["sum"]) == int(m["x"]) + int(m["y"]) >= 10
    assert m["carry"] == m["sum"][0]
    node = next(l for l in lines[1:] if l.startswith(f"{layer}_{feature}_"))
    logit = next(l for l in lines[1:] if "Output" in l)
    assert node.split()[0] == m["node"] and "on '='" in node, f"tutorial claim 'graph node and target': {node!r}"
    assert f'Output "{m["carry"]}"' in logit, f"tutorial claim 'graph node and target': the target logit is {logit!r}"
    _, motif_out = t.console("r1interp motifs")
    assert any(l.split()[:2] == [m["node"], m["node"].rsplit("_", 1)[1]] for l in motif_out), (
        "tutorial claim 'graph node and target': the motifs block lists another node"
    )


def _motif_rows(t: Tutorial) -> dict[str, list[str]]:
    _, out = t.console("r1interp motifs")
    return {l.split()[0]: l.split()[1:] for l in out if l.strip() and l.strip() != "..."}


@claim
def motif_graph_z(t: Tutorial, r: Reports):
    rows = _motif_rows(t)
    m = t.one(
        "motif graph z",
        r"coherent feed-forward loops \(z = (?P<coherent>-?[\d.]+) against a layer-preserving configuration "
        r"null\) and poor in incoherent ones \(z = (?P<incoherent>-?[\d.]+)\): (?P<n_coh>\d+) of its "
        r"(?P<n_all>\d+) loops are coherent \((?P<pct>\d+)%\)",
    )
    coh, inc = int(rows["coherent"][0]), int(rows["incoherent"][0])
    same(
        "motif graph z",
        "the tutorial's motifs block",
        m.groupdict(),
        {
            "coherent": rows["coherent"][1],
            "incoherent": rows["incoherent"][1],
            "n_coh": str(coh),
            "n_all": str(coh + inc),
            "pct": str(round(100 * coh / (coh + inc))),
        },
    )


@claim
def motif_node_roles(t: Tutorial, r: Reports):
    layer, feature, _ = t.feature
    rows = _motif_rows(t)
    node = next(k for k in rows if k.startswith(f"{layer}_{feature}_"))
    _, source, intermediate, target = rows[node]
    m = t.one(
        "motif node roles",
        r"Feature \d+/\d+ is (?P<role>mostly a \*\*target\*\*|mostly an \*\*intermediate\*\*|as often an "
        r"\*\*intermediate\*\* as a \*\*target\*\*): (?P<t_all>\d+) loops end on it, (?P<t_coh>\d+) of them coherent "
        r"\((?P<t_pct>\d+)%, (?P<cmp>less|more) than the graph's (?P<g_pct>\d+)%\) — two paths from the same earlier "
        r"feature reach it with the same sign (?P<t_coh2>\d+) times and with opposite signs (?P<t_inc>\d+) "
        r"times\. In the last layer it starts no loop \((?P<source>\d+/\d+) as source\); as an intermediate "
        r"it relays (?P<i_all>\d+) loops into the output, (?P<i_coh>\d+) of them coherent",
    )
    tc, ti = map(int, target.split("/"))
    ic, ii = map(int, intermediate.split("/"))
    g = t.one("motif graph z", r"(?P<n_coh>\d+) of its (?P<n_all>\d+) loops are coherent \((?P<pct>\d+)%\)")
    same(
        "motif node roles",
        "the tutorial's motifs block",
        m.groupdict(),
        {
            "t_all": str(tc + ti),
            "t_coh": str(tc),
            "t_coh2": str(tc),
            "t_inc": str(ti),
            "t_pct": str(round(100 * tc / (tc + ti))),
            "g_pct": g["pct"],
            "source": "0/0" if source == "0/0" else f"(not 0/0: {source})",
            "i_all": str(ic + ii),
            "i_coh": str(ic),
            "role": word(
                tc + ti,
                ic + ii,
                "mostly an **intermediate**",
                "as often an **intermediate** as a **target**",
                "mostly a **target**",
            ),
            "cmp": word(tc / (tc + ti), int(g["n_coh"]) / int(g["n_all"]), "less", "more", "more"),
        },
    )
    assert layer == max(int(k.split("_")[0]) for k in rows if re.fullmatch(r"\d+_\d+_\d+", k)), "not in the last layer"


@claim
def coherent_share_reasoner_vs_base(t: Tutorial, r: Reports):
    m = t.one(
        "coherent share reasoner vs base",
        r"the coherent share of the reasoner's answer graphs is (?P<reasoner>[\d.]+) against (?P<base>[\d.]+) in the base "
        r"model's \(difference (?P<diff>[\d.]+), 95% CI \[(?P<lo>[\d.]+), (?P<hi>[\d.]+)\] over the (?P<n>\d+) prompts; "
        r".*?and (?P<prompt>[\w-]+) is among the prompts with the largest gap \(\+(?P<gap>[\d.]+)\)",
    )
    row = next(
        x for x in r.csv(DIFFERENCES) if x["comparison"] == "reasoner_vs_base" and x["statistic"] == "coherent_fraction"
    )
    gaps = dict(re.findall(r"([\w-]+) \(\+?(-?[\d.]+)\)", row["top_prompts"]))
    same(
        "coherent share reasoner vs base",
        DIFFERENCES,
        m.groupdict(),
        {
            "reasoner": f2(row["mean_a"]),
            "base": f2(row["mean_b"]),
            "diff": f2(row["difference"]),
            "lo": f2(row["ci_low"]),
            "hi": f2(row["ci_high"]),
            "n": row["n_a"],
            "prompt": m["prompt"] if m["prompt"] in gaps else "(not in top_prompts)",
            "gap": gaps.get(m["prompt"], "(none)"),
        },
    )
    assert row["significant"] == "True" and row["n_a"] == row["n_b"]
    groups = r.json(MOTIFS)["groups"]
    same(
        "coherent share reasoner vs base",
        MOTIFS,
        {"reasoner": m["reasoner"], "base": m["base"]},
        {
            "reasoner": f2(groups["reasoner/answer"]["ffl_coherent_fraction"]),
            "base": f2(groups["base/answer"]["ffl_coherent_fraction"]),
        },
    )
    assert m["prompt"] in t.console("r1interp motifs")[0], (
        "tutorial claim 'coherent share': names another prompt than the motifs block's"
    )


@claim
def clustering(t: Tutorial, r: Reports):
    m = t.one(
        "clustering",
        r"clustered the (?P<steps>\d+) steps of (?P<problems>\d+) held-out traces by their feature profiles "
        r"\(k = (?P<k>\d+); ARI (?P<ari>[\d.]+) against the generator's step types",
    )
    c = r.json(CLUSTERS)
    same(
        "clustering",
        CLUSTERS,
        m.groupdict(),
        {
            "steps": str(c["steps"]),
            "problems": str(c["problems"]),
            "k": str(c["k"]),
            "ari": f3(c["kmeans"]["ari_vs_true_step_types"]),
        },
    )


@claim
def cluster_table_types(t: Tutorial, r: Reports):
    _, out = t.snippet("profiles.npy")
    rows = [l.split() for l in out.body.splitlines()]
    said = {row[0]: row[1] for row in rows}
    same("cluster table types", TAXONOMY, said, {f"C{c}": x["majority_true_type"] for c, x in r.taxonomy.items()})
    assert len(said) == len(r.taxonomy), (
        f"tutorial claim 'cluster table types': {len(said)} clusters, taxonomy has {len(r.taxonomy)}"
    )


CLUSTER_SENTENCES = {
    "cluster: column sums that produce a carry": (
        r"C(?P<c>\d+) \((?P<size>\d+) column sums that produce a carry, `(?P<example>[^`]+)`\)",
        "column_sum_carry",
    ),
    "cluster: sums that take in a carry": (
        r"C(?P<c>\d+) \((?P<size>\d+) sums that take in a carry, `(?P<example>[^`]+)`\)",
        "column_sum_carry",
    ),
}


def _cluster_claim(name: str):
    pattern, majority = CLUSTER_SENTENCES[name]

    def check(t: Tutorial, r: Reports):
        m = t.one(name, pattern)
        c = r.taxonomy.get(int(m["c"]))
        assert c is not None, f"tutorial claim '{name}': {TAXONOMY} has no cluster C{m['c']}"
        actual = {"c": m["c"], "size": str(c["size"])}
        if "example" in m.groupdict():
            actual["example"] = m["example"] if m["example"] in c["examples"] else f"(not among {c['examples']})"
        if "purity" in m.groupdict():
            actual |= {
                "purity": f2(c["purity"]),
                "plain": str(c["true_step_types"].get("column_sum")),
                "carry": str(c["true_step_types"].get("column_sum_carry")),
            }
        same(name, TAXONOMY, m.groupdict(), actual)
        assert c["majority_true_type"] == majority, (
            f"tutorial claim '{name}': C{m['c']} is mostly {c['majority_true_type']}"
        )

    CLAIMS[name] = check


for _name in CLUSTER_SENTENCES:
    _cluster_claim(_name)


# the kinds of cluster the prose names, by the majority step type of the generator
CLUSTER_KINDS = {
    "multiplication-carry clusters": "column_product_carry",
    "plain sums": "column_sum",
    "final carries": "final_carry",
    "carry-free products": "column_product",
}


@claim
def cluster_prose_follows_table(t: Tutorial, r: Reports):
    """'fires most on' the table's top two clusters (the ranking's target), 'a little' on the next ones, 'next to
    nothing' (at most the quoted value) on the rest; each cluster named by the kind of step it mostly holds."""
    _, out = t.snippet("profiles.npy")
    rows = [l.split() for l in out.body.splitlines()]
    most = t.one(
        "cluster prose follows table",
        r"fires most on the two carry clusters, the ranking's target: C(\d+) .*? and C(\d+) ",
    ).groups()
    little = t.one(
        "cluster prose follows table", r"The multiplication-carry clusters ((?:C\d+(?:, | and )?)+) get a little"
    )
    rest = t.one(
        "cluster prose follows table",
        r"the rest next to nothing \((?P<max>[\d.]+) or less\): the plain sums of (?P<plain>C\d+ and C\d+), the final "
        r"carries of (?P<final>C\d+ and C\d+), the carry-free products of (?P<products>C\d+)\.",
    )

    def ids(text: str) -> list[str]:
        return sorted(re.findall(r"C(\d+)", text))

    small = float(rest["max"])
    named_rest = {
        kind: ids(rest[key])
        for kind, key in (("plain sums", "plain"), ("final carries", "final"), ("carry-free products", "products"))
    }
    said_rest = sorted(c for clusters in named_rest.values() for c in clusters)
    named_rest["multiplication-carry clusters"] = ids(little[1])
    same(
        "cluster prose follows table",
        "the tutorial's cluster table",
        {"most": sorted(most), "little": ids(little[1]), "rest": said_rest},
        {
            "most": sorted(row[0][1:] for row in rows[:2]),
            "little": sorted(row[0][1:] for row in rows[2:] if float(row[2]) > small),
            "rest": sorted(row[0][1:] for row in rows[2:] if float(row[2]) <= small),
        },
    )
    target = r.json(INTERVENTIONS)["feature_ranking"]["target_clusters"]
    assert sorted(map(int, most)) == sorted(target), f"tutorial claim 'cluster prose': the ranking's target is {target}"
    for kind, clusters in named_rest.items():
        wrong = [c for c in clusters if r.taxonomy[int(c)]["majority_true_type"] != CLUSTER_KINDS[kind]]
        assert not wrong, f"tutorial claim 'cluster prose': {wrong} are not mostly {CLUSTER_KINDS[kind]} ({kind})"


def _snippet_lines(t: Tutorial) -> dict[str, str]:
    """The ablation snippet's output: arm -> 'add_carry cell | add_no_carry cell'."""
    _, out = t.snippet("ablate(")
    lines = {}
    for line in out.body.splitlines():
        if line in NOTICES:
            continue
        m = re.fullmatch(
            r"(?P<arm>.+?)\s+add_carry (?P<carry>[\d.]+ \[[\d.]+, [\d.]+\])\s+add_no_carry (?P<plain>[\d.]+ \[[\d.]+, [\d.]+\])",
            line,
        )
        assert m, f"tutorial claim 'ablation snippet output': unexpected line {line!r}"
        lines[m["arm"]] = [m["carry"], m["plain"]]
    return lines


@claim
def ablation_table(t: Tutorial, r: Reports):
    layer, feature, rank = t.feature
    rows = t.table("ablated")
    snippet = _snippet_lines(t)
    groups = ("add_carry", "add_no_carry")
    for arm, cells in rows.items():
        if arm == "nothing":
            same(
                "ablation table: nothing", RESULTS, {"cells": cells}, {"cells": [r.cell("baseline", g) for g in groups]}
            )
            same("ablation table: nothing", "the snippet's output", {"cells": cells}, {"cells": snippet["nothing"]})
        elif arm == f"{layer}/{feature} alone" or arm == "top 20 carry features":
            key = arm if arm.endswith("alone") else "top 20"
            same(f"ablation table: {arm}", "the snippet's output", {"cells": cells}, {"cells": snippet[key]})
        elif m := re.fullmatch(r"top (\d+) carry features(?: \((\d+)/(\d+) among them\))?", arm):
            size = int(m[1])
            same(
                f"ablation table: {arm}",
                RESULTS,
                {"cells": cells},
                {"cells": [r.cell("ablation", g, size) for g in groups]},
            )
            if m[2]:
                assert (int(m[2]), int(m[3])) == (layer, feature) and rank <= size, (
                    f"tutorial claim 'ablation table: {arm}'"
                )
        elif m := re.fullmatch(r"(\d+) random features \(same count per layer, (\d+) draws\)", arm):
            size, draws = int(m[1]), int(m[2])
            actual = [
                " / ".join(f2(r.results("ablation_random", g, size, d)[0]["accuracy"]) for d in range(draws))
                for g in groups
            ]
            same(f"ablation table: {arm}", RESULTS, {"cells": cells}, {"cells": actual})
            assert len(r.results("ablation_random", "add_carry", size)) == draws, (
                f"tutorial claim 'ablation table: {arm}': draws"
            )
        else:
            raise AssertionError(f"tutorial claim 'ablation table': no check for the row {arm!r}")
    sizes = {float(x["size"]) for x in r.csv(RESULTS) if x["intervention"] == "ablation"}
    listed = {float(m[1]) for a in rows if (m := re.fullmatch(r"top (\d+) carry features.*", a))} - {20.0}
    assert sizes <= listed, (
        f"tutorial claim 'ablation table': the stage's sizes {sorted(sizes)}, the table lists {sorted(listed)}"
    )


@claim
def ablation_multiplication(t: Tutorial, r: Reports):
    m = t.one(
        "ablation multiplication",
        r"The same features carry multiplication: with carry, it falls to (?P<a1>[\d.]+) at (?P<n1>\d+) "
        r"and (?P<a2>[\d.]+) at (?P<n2>\d+)\.",
    )
    same(
        "ablation multiplication",
        RESULTS,
        {"a1": m["a1"], "a2": m["a2"]},
        {
            "a1": f2(r.results("ablation", "mul_carry", int(m["n1"]))[0]["accuracy"]),
            "a2": f2(r.results("ablation", "mul_carry", int(m["n2"]))[0]["accuracy"]),
        },
    )


@claim
def steering(t: Tutorial, r: Reports):
    m = t.one(
        "steering",
        r"Steering with the carry direction \(the top (?P<features>\d+) features' typical output added to the MLPs\) "
        r"changes nothing at alpha (?P<a_low>[\d.]+) and at alpha (?P<a_high>[\d.]+) costs (?P<relation>about what|less "
        r"than|more than) a random direction costs \(add with carry (?P<steer>[\d.]+) vs (?P<random>[\d.]+) for the "
        r"random one\)",
    )
    d = r.json(INTERVENTIONS)
    low = r.by("alpha", float(m["a_low"]), d["steering"])
    high = r.by("alpha", float(m["a_high"]), d["steering"])
    rand = r.by("alpha", float(m["a_high"]), d["steering_random"])
    changed = [g for g, x in low["groups"].items() if x["accuracy"] != d["baseline"][g]["accuracy"]]
    assert not changed, f"tutorial claim 'steering': alpha {m['a_low']} changes {changed} in {INTERVENTIONS}"
    steered = {
        str(int(float(x["size"])))
        for x in r.csv(RESULTS)
        if x["intervention"] == "steering" and x["model"] == "reasoner"
    }
    steer, random = high["groups"]["add_carry"]["accuracy"], rand["groups"]["add_carry"]["accuracy"]
    same(
        "steering",
        INTERVENTIONS,
        {"steer": m["steer"], "random": m["random"], "features": m["features"], "relation": m["relation"]},
        {
            "steer": f2(steer),
            "random": f2(random),
            "features": steered.pop() if len(steered) == 1 else str(steered),
            # costs less = keeps more accuracy; within 5 points is "about what"
            "relation": word(steer, random, "more than", "about what", "less than", tolerance=0.05),
        },
    )


@claim
def weight_edit(t: Tutorial, r: Reports):
    m = t.one(
        "weight edit",
        r"Projecting the top (?P<n1>\d+) or (?P<n2>\d+) features' decoder directions out of the MLP output "
        r"weights breaks addition about as much as projecting out as many random features' directions \(add with "
        r"carry (?P<a1>[\d.]+) / (?P<a2>[\d.]+) against (?P<r1>[\d.]+) / (?P<r2>[\d.]+), the mean of (?P<draws>\d+) "
        r"random draws\), and add without carry with it \((?P<p1>[\d.]+) / (?P<p2>[\d.]+)\)\.",
    )
    d = r.json(INTERVENTIONS)
    edit = {k: r.by("size", float(m[k]), d["weight_edit"])["groups"] for k in ("n1", "n2")}
    rand = {k: r.by("size", float(m[k]), d["weight_edit_random"])["groups"] for k in ("n1", "n2")}
    same(
        "weight edit",
        INTERVENTIONS,
        {k: m[k] for k in ("a1", "a2", "r1", "r2", "draws", "p1", "p2")},
        {
            "a1": f2(edit["n1"]["add_carry"]["accuracy"]),
            "a2": f2(edit["n2"]["add_carry"]["accuracy"]),
            "r1": f2(rand["n1"]["add_carry"]["mean_accuracy"]),
            "r2": f2(rand["n2"]["add_carry"]["mean_accuracy"]),
            "draws": str(rand["n1"]["add_carry"]["draws"]),
            "p1": f2(edit["n1"]["add_no_carry"]["accuracy"]),
            "p2": f2(edit["n2"]["add_no_carry"]["accuracy"]),
        },
    )
    for k in ("n1", "n2"):  # "about as much": inside the range of the random draws
        lo, hi = rand[k]["add_carry"]["min_accuracy"], rand[k]["add_carry"]["max_accuracy"]
        acc = edit[k]["add_carry"]["accuracy"]
        assert lo <= acc <= hi, f"tutorial claim 'weight edit': top {m[k]} gives {acc}, random draws {lo}-{hi}"
    assert all(e["scale"] == 0.0 for e in d["weight_edit"]), "tutorial claim 'weight edit': 'projecting out' is scale 0"


@claim
def out_of_distribution(t: Tutorial, r: Reports):
    m = t.one(
        "out of distribution",
        r"No intervention fixed the (?P<digits>\d+)-digit operands: ood_add and ood_mul stay at (?P<acc>[\d.]+) "
        r"under every one; the subspace fine-tune brings the gold answer's per-token NLL on ood_add down from "
        r"(?P<nll_base>[\d.]+) to (?P<nll_ft>[\d.]+), no better than a random subspace \((?P<nll_rand>[\d.]+)\), "
        r"and costs in-distribution accuracy \(add with carry (?P<ft_acc>[\d.]+)\)",
    )
    d = r.json(INTERVENTIONS)
    params = (r.root / "params.yaml" if (r.root / "params.yaml").exists() else ROOT / "params.yaml").read_text()
    ood = [float(x["accuracy"]) for x in r.csv(RESULTS) if x["group"].startswith("ood_") and x["model"] == "reasoner"]
    ft = d["finetune"]
    same(
        "out of distribution",
        f"{RESULTS} and {INTERVENTIONS}",
        m.groupdict(),
        {
            "digits": str(yaml.safe_load(params)["interventions"]["ood_digits"]),
            "acc": f2(max(ood)) if max(ood) == min(ood) else f"(between {min(ood)} and {max(ood)})",
            "nll_base": f2(d["baseline"]["ood_add"]["gold_nll"]),
            "nll_ft": f2(ft["finetune"]["groups"]["ood_add"]["gold_nll"]),
            "nll_rand": f2(ft["finetune_random"]["groups"]["ood_add"]["gold_nll"]),
            "ft_acc": f2(ft["finetune"]["groups"]["add_carry"]["accuracy"]),
        },
    )
    assert not any(x["improved"] for x in d["ood_improvement"]), "tutorial claim 'out of distribution': an arm improved"


@claim
def scores_quoted(t: Tutorial, r: Reports):
    _, out = t.console("r1interp features show")
    scores = re.search(r"detection ([\d.]+), fuzzing ([\d.]+)", next(l for l in out if l.startswith("scores:")))
    m = t.one(
        "scores quoted",
        r"Detection (?P<detection>[\d.]+) means the label predicts held-out activating vs non-activating "
        r"windows well above chance; fuzzing (?P<fuzzing>[\d.]+) \(does it pick the right tokens inside a window\) "
        r"is (?P<relation>lower|the same|higher)",
    )
    same(
        "scores quoted",
        "the tutorial's features-show block",
        m.groupdict(),
        {
            "detection": scores[1],
            "fuzzing": scores[2],
            "relation": word(float(scores[2]), float(scores[1]), "lower", "the same", "higher"),
        },
    )


@claim
def build_time(t: Tutorial, r: Reports):
    block = next(b for b in t.blocks if b.lang == "bash" and "dvc repro" in b.body)
    m = re.search(r"# ~(?P<minutes>\d+) min on 2 cores \((?P<seconds>\d+) s measured\)", block.body)
    assert m, "tutorial claim 'build time': the install line's comment changed"
    readme = (r.root / README if (r.root / README).exists() else ROOT / README).read_text()
    # the generated timing row of the README's results table (python -m r1interp.readme, from reports/timings/)
    measured = re.search(
        r"full `dvc repro` with nothing built yet[^|]*\*\* \| \*\*(\d+) s \((\d+\.\d) min\)\*\*", readme
    )
    assert measured, "README: the results table's full `dvc repro` row moved"
    minutes = str(round(float(measured[2])))
    same("build time", README, m.groupdict(), {"minutes": minutes, "seconds": measured[1]})
    assert "pip install -c constraints.txt -e . && dvc repro" in block.body, "tutorial: the install command changed"


@claim
def reproducibility_note(t: Tutorial, r: Reports):
    assert "not bit-reproducible" not in t.prose and "indices can differ" not in t.prose
    t.one(
        "reproducibility note",
        r"Rebuilds are byte-identical across machines \(README, \[Reproducibility\]\(\.\./README\.md#reproducibility\)",
    )


# ---------------------------------------------------------------------------------------------------------------
# tests: claims (CI)


@pytest.fixture(scope="module")
def tutorial() -> Tutorial:
    return Tutorial((ROOT / TUTORIAL).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reports() -> Reports:
    return Reports(ROOT)


@pytest.mark.parametrize("name", list(CLAIMS))
def test_claim(name, tutorial, reports):
    CLAIMS[name](tutorial, reports)


def failing(text: str, root: Path = ROOT) -> dict[str, str]:
    """Claim name -> message, for every claim the tutorial text fails."""
    t, r, out = Tutorial(text), Reports(root), {}
    for name, check in CLAIMS.items():
        try:
            check(t, r)
        except (AssertionError, KeyError, StopIteration, IndexError) as exc:
            out[name] = str(exc) or type(exc).__name__
    return out


# One number changed in a temp copy of the tutorial: exactly the claim that quotes it fails, naming it.
EDITS = [
    ("ranks 4th there", "ranks 5th there", "feature_rank"),
    ("(mean activation 0.53 on", "(mean activation 0.55 on", "feature_means"),
    ("The first 3 rows", "The first 2 rows", "ranking_top_rows"),
    ("C0 and C4, 421 column sums", "C0 and C4, 420 column sums", "ranking_split"),
    ("additions ood-01 and ood-03", "additions ood-01 and ood-02", "graphs_listed"),
    ("(z = 4.70 against", "(z = 4.07 against", "motif_graph_z"),
    ("24 loops end on it", "25 loops end on it", "motif_node_roles"),
    ("is 0.94 against 0.56", "is 0.93 against 0.56", "coherent_share_reasoner_vs_base"),
    ("ARI 0.551", "ARI 0.515", "clustering"),
    ("C4 (293 column sums", "C4 (294 column sums", "cluster: column sums that produce a carry"),
    ("C0 (128 sums", "C0 (129 sums", "cluster: sums that take in a carry"),
    ("(0.004 or less)", "(0.003 or less)", "cluster_prose_follows_table"),
    ("| 0.36 [0.24, 0.50] |", "| 0.04 [0.01, 0.13] |", "ablation_table"),
    ("falls to 0.28 at 150", "falls to 0.82 at 150", "ablation_multiplication"),
    ("(add with carry 0.76 vs 0.58", "(add with carry 0.76 vs 0.85", "steering"),
    ("against 0.35 / 0.02,", "against 0.53 / 0.02,", "weight_edit"),
    ("2.91 to 0.76", "2.91 to 0.67", "out_of_distribution"),
    ("Detection 0.80 means", "Detection 0.85 means", "scores_quoted"),
    ("(1378 s measured)", "(1379 s measured)", "build_time"),
]


def test_the_real_tutorial_passes_every_claim(tutorial):
    assert failing(tutorial.text) == {}


@pytest.mark.parametrize("old,new,name", EDITS, ids=[e[2] for e in EDITS])
def test_a_changed_number_fails_its_claim(tmp_path, tutorial, old, new, name):
    assert tutorial.text.count(old) == 1, f"the edit's anchor {old!r} is not once in the tutorial"
    copy = tmp_path / "tutorial.md"
    copy.write_text(tutorial.text.replace(old, new), encoding="utf-8")
    problems = failing(copy.read_text(encoding="utf-8"))
    assert name in problems, f"editing {old!r} -> {new!r} failed {sorted(problems)}, not {name!r}"
    assert set(problems) == {name}, f"one edit should fail one claim: {problems}"
    assert (ROOT / TUTORIAL).read_text(encoding="utf-8") == tutorial.text  # the real file is untouched


def test_a_changed_artifact_fails_the_claim_quoting_it(tmp_path, tutorial):
    """A rebuilt report that no longer says what the tutorial quotes fails that claim, naming the claim and the file."""
    for path in (RANKED, RESULTS, INTERVENTIONS, CLUSTERS, TAXONOMY, MOTIFS, DIFFERENCES, README):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, tmp_path / path)
    clusters = json.loads((tmp_path / CLUSTERS).read_text())
    clusters["kmeans"]["ari_vs_true_step_types"] = 0.61
    (tmp_path / CLUSTERS).write_text(json.dumps(clusters))
    results = (
        (tmp_path / RESULTS)
        .read_text()
        .replace(
            "ablation,column_sum_carry clusters,reasoner,150.0,,,0,add_carry,50,18,0.36,",
            "ablation,column_sum_carry clusters,reasoner,150.0,,,0,add_carry,50,2,0.04,",
        )
    )
    (tmp_path / RESULTS).write_text(results)
    problems = failing(tutorial.text, tmp_path)
    assert set(problems) == {"clustering", "ablation_table"}, problems
    assert "reports/metrics/clusters.json" in problems["clustering"] and "0.610" in problems["clustering"]
    assert "reports/interventions/results.csv" in problems["ablation_table"] and "0.04" in problems["ablation_table"]


# ---------------------------------------------------------------------------------------------------------------
# tests: re-run the tutorial's commands against the built artifacts (skipped without them)

NEEDS = {
    "features show": [Path("data/activations/reasoner"), Path("data/labels/labels.parquet")],
    "graphs": [Path("data/graphs"), GRAPHS],
    "clusters": [Path("data/clusters/profiles.npy"), Path("data/clusters/steps.parquet")],
    "ablation": [
        Path("models/lm/reasoner"),
        Path("models/transcoders/reasoner/sparsify"),
        Path("data/corpus/corpus.parquet"),
    ],
}


def need(kind: str) -> None:
    for path in NEEDS[kind]:
        if not (ROOT / path).exists():
            pytest.skip(f"{path} not built: run dvc repro or dvc pull")


def matches(expected: list[str], actual: list[str]) -> str | None:
    """None if `actual` shows `expected` (line by line, trailing spaces ignored; a `...` line skips any lines)."""
    exp = [l.rstrip() for l in expected if l.rstrip() not in NOTICES]
    act = [l.rstrip() for l in actual if l.rstrip() not in NOTICES]
    segments, current = [], []
    for line in exp:
        if line == "...":
            segments.append(current)
            current = []
        else:
            current.append(line)
    segments.append(current)
    anchored_start, anchored_end = exp[:1] != ["..."], exp[-1:] != ["..."]
    pos = 0
    for i, seg in enumerate(segments):
        if not seg:
            continue
        if i == 0 and anchored_start:
            if act[: len(seg)] != seg:
                return _diff(seg, act[: len(seg)])
            pos = len(seg)
            continue
        at = next((j for j in range(pos, len(act) - len(seg) + 1) if act[j : j + len(seg)] == seg), None)
        if at is None:
            near = next((j for j in range(pos, len(act)) if act[j] == seg[0]), pos)
            return _diff(seg, act[near : near + len(seg)])
        pos = at + len(seg)
    if anchored_end and segments[-1] and pos != len(act):
        return f"extra output after the block's last line: {act[pos : pos + 5]}"
    return None


def _diff(expected: list[str], actual: list[str]) -> str:
    for e, a in zip(expected + [""] * len(actual), actual + [""] * len(expected), strict=True):
        if e != a:
            return f"the tutorial shows\n  {e!r}\nthe command prints\n  {a!r}"
    return "differs"


def run_console(command: str) -> list[str]:
    if command.startswith("r1interp "):
        argv = [sys.executable, "-m", "r1interp.cli", *shlex.split(command)[1:]]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    else:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"`{command}` exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.splitlines()


def run_snippet(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the snippet exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.splitlines()


@pytest.mark.parametrize(
    "command_start,kind",
    [
        ("r1interp features show", "features show"),
        ("grep -l", "graphs"),
        ("r1interp motifs", "graphs"),
    ],
)
def test_console_block_is_what_the_command_prints(tutorial, command_start, kind):
    need(kind)
    command, expected = tutorial.console(command_start)
    problem = matches(expected, run_console(command))
    assert problem is None, f"tutorial console block `{command}`: {problem}"


@pytest.mark.parametrize(
    "marker,kind",
    [
        ('json.load(open("data/graphs/', "graphs"),
        ("profiles.npy", "clusters"),
        pytest.param("ablate(", "ablation", marks=pytest.mark.slow),
    ],
)
def test_snippet_output_is_what_it_prints(tutorial, marker, kind):
    need(kind)
    code, out = tutorial.snippet(marker)
    problem = matches(out.body.splitlines(), run_snippet(code.body))
    assert problem is None, f"tutorial snippet at docs/tutorial.md:{code.line}: {problem}"


def test_the_feature_is_the_highest_ranked_in_the_carry_think_graphs(tutorial, reports):
    """How the tutorial picked it: the first row of the carry ranking with a node in a carry prompt's think graph
    (the rows above it are in no think graph); and it is in the think graph of every prompt whose first column
    carries and in no other graph (what sections 1 and 2 say)."""
    need("graphs")
    layer, feature, rank = tutorial.feature
    graphs = {p.name: json.loads(p.read_text()) for p in sorted((ROOT / GRAPHS).glob("*.json"))}
    ids = {name: {n["node_id"] for n in g["nodes"]} for name, g in graphs.items()}
    think = {name: i for name, i in ids.items() if name.endswith("-think.json")}
    carry = {name: i for name, i in think.items() if re.search(r"-carry-\d+-think", name)}
    assert carry, f"no carry think graphs in {GRAPHS}"

    def first_column_carries(name: str) -> bool:
        m = re.search(r"ones: (\d)([+*])(\d)=$", graphs[name]["metadata"]["prompt"])
        assert m, f"{name}: the prompt does not end at the first column's '='"
        return m[2] == "+" and int(m[1]) + int(m[3]) >= 10

    def graphs_with(l, f, of):
        return sorted(name for name, i in of.items() if any(n.startswith(f"{l}_{f}_") for n in i))

    first = next(
        (i + 1, row) for i, row in enumerate(reports.ranked) if graphs_with(row["layer"], row["feature"], carry)
    )
    assert (first[0], int(first[1]["layer"]), int(first[1]["feature"])) == (rank, layer, feature), (
        f"the highest-ranked feature in a carry think graph is {first[1]['layer']}/{first[1]['feature']} (rank {first[0]}), "
        f"the tutorial follows {layer}/{feature} (rank {rank})"
    )
    above = [
        f"{r['layer']}/{r['feature']}"
        for r in reports.ranked[: rank - 1]
        if graphs_with(r["layer"], r["feature"], think)
    ]
    assert not above, f"ranked above the feature and in a think graph: {above}"
    assert set(carry) <= {name for name in think if first_column_carries(name)}
    assert graphs_with(layer, feature, ids) == sorted(name for name in think if first_column_carries(name))
