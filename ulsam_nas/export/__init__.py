"""Export of a chosen architecture as a standalone PyTorch model.

``python -m ulsam_nas.export`` is the command (``__main__.py``).
"""
