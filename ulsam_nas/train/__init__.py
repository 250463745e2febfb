"""Training: fidelities, the proxy training loop, the one-shot supernet.

``fidelity`` defines how much training a trial gets; ``loop`` trains one genome
(``train``, re-exported here) and holds the step and epoch every training shares; ``optim``
the optimiser and learning-rate schedule; ``supernet`` the weight-sharing one-shot mode;
``weights`` writes trained weights; ``python -m ulsam_nas.train`` trains one genome
(``command``).
"""

from .loop import NonFiniteLossError, TrainResult, train

__all__ = ["NonFiniteLossError", "TrainResult", "train"]
