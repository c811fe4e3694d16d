"""Reports read a run folder: its data (data), every verdict (verdicts), tables, figures, the K-scaling report,
the status of a running study, and the report's files and MLflow artifacts (build)."""
