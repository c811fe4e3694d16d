"""Everything a run leaves lands in its run folder: where that folder is and every file in it (folder), what the
plan file holds (schema), the records of every evaluation and trial state (records), and MLflow (tracking)."""
