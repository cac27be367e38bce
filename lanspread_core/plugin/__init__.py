"""Plugins: the hook specs, the records hooks return, the registry that loads them, and provider
selection.
"""
