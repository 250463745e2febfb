"""The search: the Ray-free study ledger, Ray Tune's side (trainable, searchers, schedulers), one-shot
and final retraining.

``python -m ulsam_nas.search`` is the command (``__main__.py``). Nothing here imports Ray at
import time of the package, so the command can start Ray first.
"""
