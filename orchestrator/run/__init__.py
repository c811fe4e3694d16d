"""The plan runs on Ray: one run start to summary (runner, ending), Ray (session, reaper), each trial (trial_worker),
what the driver records (callback), searches and schedulers, resume, waves of seeds, signals, checks and progress."""
