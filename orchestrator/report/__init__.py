"""Reports read a run folder: its data, every verdict (verdicts), tables, figures, sweeps, searches against single
runs (searches), weight diagnostics, the status of a running study, and the report's files (build)."""
