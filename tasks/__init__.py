"""Prefect tasks: thin wrappers over rnncore that pass paths, chunk plans and small arrays."""
