"""Scheduled deployments of the flows in :mod:`rnnflow.flows`, declared in this package's
``prefect.yaml``. Installed as ``rnnflow.deployments`` (from the folder ``deployments/``)."""
