"""Prefect flows: the batch jobs of rnnflow, built from the tasks in :mod:`rnnflow.tasks`,
and the ``rnnflow`` command line (:mod:`rnnflow.flows.cli`).

Installed as ``rnnflow.flows`` (from the folder ``flows/``). Importing this package
imports nothing else: the command line reads the flows' options without importing
Prefect.
"""
