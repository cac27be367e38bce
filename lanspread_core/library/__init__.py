"""A games directory and what it holds: disk rules, catalog, version.ini, manifests, the index, the
monitor.
"""
