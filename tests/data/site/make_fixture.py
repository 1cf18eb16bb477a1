"""Regenerate tests/data/site/project/: a small, real slice of a built pipeline for the report-site tests.

Run from the repository root after `dvc repro` (it reads data/ and reports/):

    python tests/data/site/make_fixture.py

What it keeps (everything real, only fewer rows): three attribution graphs of one prompt (reasoner think and
answer, base answer) pruned to their most influential feature nodes and strongest links, the index rows of
those graphs, activation statistics of every feature and example windows of the graphs' features, their
labels and scored excerpts (excerpt text shortened), the metrics JSONs, motif tables of those graphs and the
reference graph, the comparison tables, the taxonomy, the critical-weights tables and the organism
tokenizer. Figures (PNG), the Data Docs and the interventions results are not kept: the tests write
stand-ins (interventions in the results.csv layout of `r1interp.reasoning.interventions`). The whole tree stays well under 1 MB.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path.cwd()
OUT = Path(__file__).resolve().parent / "project"
PROMPT = "carry-01"
FEATURE_NODES = 14  # most influential feature nodes kept per graph
LINKS = 300  # strongest links kept per graph
sys.path.insert(0, str(ROOT))


def trim_graph(doc: dict) -> dict:
    from r1interp.graphs.schema import validate_graph

    feats = sorted(
        (n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"), key=lambda n: n["influence"]
    )
    keep = {n["node_id"] for n in feats[:FEATURE_NODES]}
    keep |= {n["node_id"] for n in doc["nodes"] if n["feature_type"] != "cross layer transcoder"}
    links = [lk for lk in doc["links"] if lk["source"] in keep and lk["target"] in keep]
    links = sorted(links, key=lambda lk: -abs(lk["weight"]))[:LINKS]
    used = (
        {lk["source"] for lk in links}
        | {lk["target"] for lk in links}
        | {n["node_id"] for n in doc["nodes"] if n["feature_type"] == "logit"}
    )
    nodes = [n for n in doc["nodes"] if n["node_id"] in used]
    out = {**doc, "nodes": nodes, "links": links}
    validate_graph(out, "trimmed graph")
    return out


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    index = pd.read_parquet(ROOT / "data/graphs/index.parquet")
    index = index[index["prompt_id"] == PROMPT].copy()
    keys: dict[str, set] = {"reasoner": set(), "base": set()}
    for row in index.itertuples():
        doc = trim_graph(json.loads((ROOT / "data/graphs" / row.path).read_text()))
        dest = OUT / "data/graphs" / row.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(doc))
        for n in doc["nodes"]:
            if n["feature_type"] == "cross layer transcoder":
                keys[row.model].add((int(n["layer"]), int(n["node_id"].split("_")[1])))
        index.loc[row.Index, ["nodes", "links"]] = [len(doc["nodes"]), len(doc["links"])]
    index.to_parquet(OUT / "data/graphs/index.parquet", index=False)

    for model, wanted in keys.items():
        src = ROOT / "data/activations" / model
        dest = OUT / "data/activations" / model
        dest.mkdir(parents=True)
        features = pd.read_parquet(src / "features.parquet")
        taxonomy = json.loads((ROOT / "reports/clusters/taxonomy.json").read_text())
        listed = wanted | {
            (cf["layer"], cf["feature"]) for cl in taxonomy["clusters"] for cf in cl["characteristic_features"]
        }
        keep = [(lay, f) in listed and lay <= 1 for lay, f in zip(features["layer"], features["feature"], strict=True)]
        features[keep].to_parquet(
            dest / "features.parquet", index=False
        )  # layers 0-1 only: missing stats is a case too
        ex = pd.read_parquet(src / "examples.parquet", filters=[("kind", "in", ["top", "quantile"])])
        pairs = pd.DataFrame(sorted(wanted), columns=["layer", "feature"])
        ex = ex.merge(pairs, on=["layer", "feature"])
        ex = ex[(ex["kind"] == "top") & (ex["rank"] < 4) | (ex["kind"] == "quantile") & (ex["rank"] % 5 == 0)]
        ex.to_parquet(dest / "examples.parquet", index=False)

    labels = pd.read_parquet(ROOT / "data/labels/labels.parquet")
    allkeys = {(m, lay, f) for m, ks in keys.items() for lay, f in ks}
    mask = [
        (m, lay, f) in allkeys for m, lay, f in zip(labels["model"], labels["layer"], labels["feature"], strict=True)
    ]
    top = (
        labels[labels["status"] == "ok"]
        .sort_values("detection_balanced_accuracy", ascending=False)
        .groupby(["model", "layer"])
        .head(2)
    )
    labels = pd.concat([labels[mask], top]).drop_duplicates(["model", "layer", "feature"])
    (OUT / "data/labels").mkdir(parents=True)
    labels.to_parquet(OUT / "data/labels/labels.parquet", index=False)
    scores = pd.read_parquet(ROOT / "data/labels/scores.parquet")
    scores = scores.merge(labels[["model", "layer", "feature"]], on=["model", "layer", "feature"])
    scores["text"] = scores["text"].str.slice(0, 24)
    scores.to_parquet(OUT / "data/labels/scores.parquet", index=False)

    for rel in [
        "reports/metrics/" + p.name for p in (ROOT / "reports/metrics").glob("*.json") if p.name != "interventions.json"
    ] + [
        "reports/transcoders/per_layer.json",
        "reports/clusters/taxonomy.json",
        "reports/clusters/transitions.csv",
        "reports/clusters/k_selection.csv",
        "reports/motifs/compare/differences.csv",
        "reports/critical/attribution_ranking.csv",
        "reports/critical/decoder_aligned_features.csv",
        "reports/critical/encoder_aligned_features.csv",
    ]:
        (OUT / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, OUT / rel)
    slugs = set(index["slug"]) | {"opposite_of_small"}
    (OUT / "reports/motifs/tables").mkdir(parents=True)
    for name in ("zscores", "census"):
        t = pd.read_parquet(ROOT / f"reports/motifs/tables/{name}.parquet")
        t[t["graph"].isin(slugs)].to_parquet(OUT / f"reports/motifs/tables/{name}.parquet", index=False)
    warn = [
        line
        for line in (ROOT / "reports/motifs/tables/warnings.txt").read_text().splitlines()
        if line.split(":")[0] in slugs
    ]
    (OUT / "reports/motifs/tables/warnings.txt").write_text("\n".join(warn) + "\n")
    per_graph = pd.read_csv(ROOT / "reports/motifs/compare/per_graph.csv")
    per_graph[per_graph["graph"].isin(slugs) | (per_graph.index % 6 == 0)].to_csv(
        OUT / "reports/motifs/compare/per_graph.csv", index=False
    )
    enrich = pd.read_csv(ROOT / "reports/clusters/enrichment_step_types.csv")
    enrich.groupby("group").head(3).to_csv(OUT / "reports/clusters/enrichment_step_types.csv", index=False)

    tok = OUT / "models/lm/reasoner"
    tok.mkdir(parents=True)
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "config.json",
    ):
        shutil.copyfile(ROOT / "models/lm/reasoner" / name, tok / name)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{OUT}: {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
