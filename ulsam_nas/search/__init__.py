"""The search: the Ray-free study ledger (``ledger``: drivers, interrupted trials, counts) and search
policy (``policy``: what trains next, for every strategy and the simulator), Ray Tune's side (``trainable`` in the
workers; ``searchers``, ``schedulers``, ``progress`` and ``runner`` in the driver), the one-shot
strategy (``oneshot``), the final retraining on the test split (``final``), and what a search
prints when it ends (``result``).

``python -m ulsam_nas.search`` is the command (``command.py``, run by ``__main__.py``). Nothing
here imports Ray at import time of the package, so the command can start Ray first.
"""
