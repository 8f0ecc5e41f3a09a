"""Prefect flows: the batch jobs of rnnflow, built from the tasks in :mod:`tasks`."""
