"""The report of a study: tables, figures, hypervolume history, and the figures published to
optuna-dashboard.

``python -m ulsam_nas.report`` is the command (``__main__.py``).
"""
