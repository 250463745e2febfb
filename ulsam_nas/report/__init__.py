"""The report of a study: its hypervolume history (``history.py``), figures (``figures.py``),
tables (``tables.py``), the HTML report and summary that hold them (``writer.py``), and the
figures published to optuna-dashboard (``publish.py``).

``python -m ulsam_nas.report`` is the command (``command.py``, run by ``__main__.py``).
"""
