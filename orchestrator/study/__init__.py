"""A study file becomes a plan: the file read and checked (spec, reader, checks, methods), the names the study
speaks (vocabulary), the shipped studies (catalogue) and the trials with their stable ids (plan)."""
