"""Latency: how a module is timed on a target (``timing.py``), the per-part timing table that
predicts a genome's latency and its check against whole-network timings (``table.py``).

``python -m ulsam_nas.latency`` is the command (``command.py``, run by ``__main__.py``).
"""
