"""The plan runs on Ray: the run from start to summary (runner), Ray itself (session, reaper), each trial (trainable),
what the driver records (callback), searches and schedulers, resume, waves of seeds, signals, checks and progress."""
