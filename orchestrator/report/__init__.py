"""Reports render what orchestrator/analysis computes: the files (build, files), Markdown (markdown), figures, a
sweep's cells, searches against single runs (search_cost), weight diagnostics, a study's status, MLflow (publish)."""
