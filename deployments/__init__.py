"""Scheduled deployments of the flows in :mod:`flows`."""
