"""Calibration: which proxy fidelity ranks genomes as a reference training does.

``python -m ulsam_nas.calibrate`` is the command (``__main__.py``).
"""
