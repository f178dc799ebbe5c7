"""Focal's batch analysis on a Ray cluster: one Ray task per study, each running the `focal`
binary's own `focal batch` on that study, and the results table merged at the end.

usage: python -m focal_ray INPUT... --out DIR --focal PATH/TO/focal [--address HOST:PORT]
"""
