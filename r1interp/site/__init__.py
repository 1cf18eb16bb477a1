"""The report site: a static, offline HTML site over the pipeline's artifacts (`reports/site/`).

`build_site` reads what the pipeline has built (anything may be missing), and writes an overview, one page
per selected feature, an interactive viewer per attribution graph, and pages for motif comparisons, the
reasoning taxonomy, interventions and experiments. No page fetches anything: data is inline, scripts and
styles are local files we wrote (`assets/`), so the site works from file:// and from any web server.
"""

from r1interp.site.build import BuildSummary, build_site

__all__ = ["BuildSummary", "build_site"]
