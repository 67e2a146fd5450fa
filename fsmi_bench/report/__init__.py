"""Reports on results tables: aggregation with bootstrap intervals, paper-layout tables (Markdown,
LaTeX, CSV), plots, paired tests and leaderboards with provenance.

Data flows one way: long results frame -> cells (``aggregate.aggregate_cells``) -> tables / plots /
leaderboards. Importing this package is cheap; pandas and numpy are imported by the submodules.
"""
