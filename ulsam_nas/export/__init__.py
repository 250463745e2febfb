"""Export of a chosen architecture as a standalone PyTorch model: what is exported and its
weights (``architecture.py``), the generated ``model.py`` and README (``source.py``), the check
in a clean interpreter (``verify.py``) and the folder written as one bundle (``bundle.py``).

``python -m ulsam_nas.export`` is the command (``command.py``, run by ``__main__.py``).
"""
