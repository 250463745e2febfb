"""``python -m ulsam_nas.report``: the offline report of a search study (``writer.py``) written
to a folder, and its summary printed.

    python -m ulsam_nas.report --study studies/mv2-synthetic [--out DIR]

The study comes from its folder, whatever the storage; a folder without a study, or a study
without a complete trial, is a one-line error with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from ..cli import ArgumentParser, fail, load_study_for_command
from ..safe_files import within
from .writer import write_report


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ulsam_nas.report", description="Offline report of a search study.")
    parser.add_argument("--study", type=Path, required=True, help="study folder (as given to the search)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default <study>/report)")
    parser.add_argument("--storage", default=None,
                        help="the study's storage, when it is not an SQLite file in the folder (as given to the search)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, _ = load_study_for_command(args.study, args.storage)
    out = args.out or args.study / "report"
    try:  # no file of the study folder is written through a symbolic link (safe_files)
        summary = write_report(study, out, root=args.study if within(out, args.study) else out)
    except ValueError as error:
        fail(str(error))
    print(summary.text())
    return 0
