"""Reports read a run folder: its data (data), every verdict (verdicts), tables, figures, sweeps (sweep), searches
against single runs (searches), weight diagnostics (diagnostics), the status of a running study, and the files (build)."""
