"""Calibration: which proxy fidelity ranks genomes as a reference training does.

The panel of genomes (``panel``), the study's trainings (``trainings``), each fidelity's figures
and the recommendation (``figures``), what a calibration prints and writes (``outputs``).
``python -m ulsam_nas.calibrate`` is the command (``command.py``, run by ``__main__.py``).
"""
