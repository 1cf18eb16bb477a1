"""What every page builder shares: where to write, what to read, and which pages exist to link to.

Pages link to each other (a graph node to its feature page, a cluster to its features, a feature to the
graphs it appears in), so a link is made only when the target page is being built: `feature_pages` is
filled before any page is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from r1interp.config import Params
from r1interp.site.inputs import Inputs, Missing

FeatureKey = tuple[str, int, int]  # (model, layer, feature)


def feature_file(key: FeatureKey) -> str:
    model, layer, feature = key
    return f"features/{model}-L{layer}-F{feature}.html"


def graph_file(slug: str) -> str:
    return f"graphs/{slug}.html"


@dataclass
class Context:
    out: Path  # the site being built (a temporary directory until the build succeeds)
    inputs: Inputs
    params: Params
    footer: str = ""
    params_file: str = "params.yaml"  # relative to the root, shown on the overview
    feature_pages: set[FeatureKey] = field(default_factory=set)
    graph_pages: set[str] = field(default_factory=set)  # slugs
    pages_written: list[str] = field(default_factory=list)

    def write(self, rel: str, html: str) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        self.pages_written.append(rel)

    def feature_href(self, key: FeatureKey, depth: int) -> str | None:
        return "../" * depth + feature_file(key) if key in self.feature_pages else None

    def graph_href(self, slug: str, depth: int) -> str | None:
        return "../" * depth + graph_file(slug) if slug in self.graph_pages else None

    def image(self, rel: str, stage: str) -> str | Missing:
        """Copy a pipeline PNG into the site (img/, path flattened) and return its site-root path."""
        src = self.inputs.path(rel)
        if not src.is_file():
            return Missing(rel, stage)
        name = "img/" + rel.replace("/", "__")
        dest = self.out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return name
