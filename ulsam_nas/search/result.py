"""What a search prints when it ends (or is interrupted): the front of the study beyond seed
noise, the genomes on it that still lack seeds, the paper's configurations, the one-shot
ranking's agreement with standalone training; then the report it writes beside the study, and
how to open the dashboard on it.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from ..analysis.agreement import agreement_of
from ..analysis.front import Front, genomes_table, paper_status
from ..models.spaces import SearchSpace
from ..report.writer import write_report
from ..studies import artifact_store, shown_url
from .ledger import finished_count


def print_result(study: optuna.Study, space: SearchSpace, storage_url: str, study_dir: Path, repeats: int) -> None:
    """The front of ``study`` beyond seed noise, how the search stands against its ``repeats``,
    the paper's configurations and the one-shot agreement; then the report written into
    ``<study_dir>/report`` (and stored as the study's artifacts) and how to open the dashboard."""
    front = Front.of_study(study)
    print(f"\n{front.noise.describe()}\n{front.signal.verdict(front.noise)}")
    trained = front.selection.trained.name
    table = genomes_table(front, members_only=True).drop(columns=[f"{trained}_ci95", "first_trial", "verdict"])
    costs = ", ".join(f"{o.column} = {o.label}" for o in front.selection.computed)
    print(f"\nFront of {study.study_name!r} beyond seed noise ({len(table)} genomes; top-1 % on the validation split, "
          f"mean and std over seeds, and shrunk toward the study's mean; {costs}, at 224 px):")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 80):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-") if len(table)
              else "(no complete trial yet)")
    agreement = agreement_of(study)
    short = [m for m in front.contenders() if m.n < repeats]
    if short and agreement is None:  # a one-shot search trains paper configurations with one seed on purpose
        missing = sum(repeats - m.n for m in short)
        print(f"{len(short)} genome(s) on the front by mean have fewer than {repeats} seeds: the budget ended before "
              f"their repeats; "
              f"--budget {finished_count(study) + missing} or more would give them {missing} more training(s)")
    labels = [label for genome, label in space.paper_genomes() if space.contains(genome)]
    statuses = [s for s in paper_status(front, labels) if s.stats is not None]
    if statuses:
        print("\nThe paper's configurations:")
        for status in statuses:
            print(f"  {status.describe()}")
    if agreement is not None:
        print("\n" + "\n".join(agreement.lines()))
    shown = shown_url(storage_url)
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url.removeprefix("sqlite:///"))
        try:
            shown = f"sqlite:///{path.relative_to(Path.cwd())}"
        except ValueError:
            pass
    try:
        summary = write_report(study, study_dir / "report")
    except ValueError:
        summary = None  # no complete trial yet: nothing to report
    if summary is not None:
        print(f"\nhypervolume of the genome means {summary.hypervolume:.4f} ({summary.reference.describe()})")
        print(f"report: {summary.files[0]} (and {', '.join(f.name for f in summary.files[1:])} beside it)")
        store = artifact_store(study_dir)
        for path in summary.files:
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
    print(f"\nOpen the dashboard on this study:\n  python -m ulsam_nas.dashboard --study {study_dir}"
          f"\n  (or: optuna-dashboard {shown} --artifact-dir {study_dir / 'artifacts'})")
