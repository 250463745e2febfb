"""Latency: per-part timing tables and their check against whole-network timings.

``python -m ulsam_nas.latency`` is the command (``__main__.py``).
"""
