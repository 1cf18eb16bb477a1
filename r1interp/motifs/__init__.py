"""Network-motif analysis of attribution graphs (our own implementation on igraph/numpy/scipy).

Modules, one concept each:
- `graph`   load a Neuronpedia attribution-graph JSON into an igraph digraph with layers, kinds and signs;
- `census`  the 16-class directed triad census (MAN labels) and the connected 4-node census;
- `signed`  feed-forward loops by sign pattern (coherent vs incoherent), with correct roles;
- `nulls`   seeded, parallel null models (configuration, Erdős–Rényi and their layer-preserving variants);
- `stats`   z-scores, significance profiles, empirical p-values and degeneracy detection;
- `analyze` the whole analysis as one JSON-ready dict;
- `cli`     the `r1interp motifs` subcommand.

We do not use the public circuit-motifs code: it swaps 111U/111D and 120U/120D, reverses the
feed-forward-loop roles, loses signs when rewiring and reports z-scores from nulls where only one of
them is free. Tests pin each of those points.

Entry point: `from r1interp.motifs.analyze import analyze` (not re-exported here, so that
`r1interp.motifs.analyze` stays the module).
"""

from r1interp.motifs.census import TRIAD_LABELS, census4, triad_census
from r1interp.motifs.graph import AttributionGraph, load_neuronpedia
from r1interp.motifs.nulls import NULL_MODELS, sample_nulls
from r1interp.motifs.signed import FFL_PATTERNS, ffl_census

__all__ = [
    "FFL_PATTERNS",
    "NULL_MODELS",
    "TRIAD_LABELS",
    "AttributionGraph",
    "census4",
    "ffl_census",
    "load_neuronpedia",
    "sample_nulls",
    "triad_census",
]
