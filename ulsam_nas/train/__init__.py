"""Training: fidelities, the proxy training loop, the one-shot supernet.

``python -m ulsam_nas.train`` trains one genome (``__main__.py``).
"""
