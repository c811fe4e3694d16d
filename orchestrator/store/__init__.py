"""Everything a run leaves lands in its run folder: where it is and every file's name (folder), what the plan file
holds (schema), the records read and written (records), the tables exported from them (tables), MLflow (tracking)."""
