"""The tests' local Ray."""

from __future__ import annotations


def start_ray(**resources):
    """A local Ray (`address="local"`: never a cluster another process left behind), 2 CPUs unless told."""
    import ray

    from orchestrator.run.session import lean_agent

    with lean_agent():   # as `arml run` starts its local Ray
        ray.init(address="local", include_dashboard=False, log_to_driver=False, **{"num_cpus": 2, **resources})
    return ray
