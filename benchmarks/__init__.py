"""Benchmarks: ``python -m benchmarks [NAME ...]`` runs every ``bench_*.py`` module.

A benchmark module defines ``run() -> list[dict]``; each dict is one row:

* ``name`` (str), ``value`` (number), ``unit`` (str) — required;
* ``baseline`` (number) — what the value is compared with; ``ratio`` = value / baseline;
* ``target`` (number) — the goal; ``pass`` is judged against it;
* ``higher_is_better`` (bool, default False) — the direction of the target.
"""
