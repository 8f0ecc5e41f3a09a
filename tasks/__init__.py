"""Prefect tasks: thin wrappers over rnncore that pass paths, chunk plans and small arrays.

Heavy work runs as Dask graphs on the cluster, computed inside the task that builds
them (:func:`rnnflow.tasks.runtime.cluster_compute`). I/O tasks retry on transient errors
only (:func:`rnnflow.tasks.runtime.io_task`).

Every task declares its cache policy, and it is ``NO_CACHE``: what a task returns
depends on the contents of the files it is given (datasets, model files) and on
rnncore's code, which Prefect's input hashing does not see, so a cached result could
be stale. A rerun recomputes; outputs are written atomically, so it replaces them whole.
"""
