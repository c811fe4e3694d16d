"""The numbers of a run, one floor below running and reporting: the run's data read once (run_data), which trial
each kind of method chooses (selection), statistics and paired verdicts, search curves, each cell's tables."""
