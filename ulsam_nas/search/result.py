"""What a search prints when it ends (or is interrupted): the front of the study beyond seed
noise, the genomes on it that still lack seeds, the paper's configurations, the one-shot
ranking's agreement with standalone training; then the report it writes beside the study, and
how to open the dashboard on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna
import pandas as pd

from ..analysis.agreement import agreement_of
from ..analysis.front import Front, genomes_table, paper_status
from ..cli import fail
from ..models.spaces import SearchSpace
from ..names import shown
from ..report.writer import write_report
from ..safe_files import LinkRefused
from ..studies import ARTIFACTS, artifact_store, shown_url
from .ledger import finished_count


def planner_answer(front: Front, space: SearchSpace, budget: int, repeats: int, sampler: str,
                   replicates: int, repeat_share: float | None = None) -> str | None:
    """When a search ends with its placements not told apart: the planner's answer
    (``ulsam_nas.simulate``) for this budget, sampler and K at the study's σ, on a landscape whose
    placements differ by the upper end of the between-genome std's interval (the largest signal the
    study allows), so the user hears what the budget buys before spending more. None: the placements
    are told apart, the signal is unmeasured, the budget is under the planner's first rung, the
    objectives are not the default's, or ``replicates`` is 0."""
    from ..simulate.planner import LADDER, plan
    from ..simulate.truth import SUPPORTED_COSTS

    signal, noise = front.signal, front.noise
    costs = tuple(o.name for o in front.selection.computed)
    if (signal.std is None or signal.resolved or budget < LADDER[0] or not replicates or costs != SUPPORTED_COSTS
            or signal.high <= 0):
        return None
    print(f"\nplanning: {replicates} simulated searches at this study's σ (python -m ulsam_nas.simulate) ...",
          file=sys.stderr, flush=True)
    answer = plan(space, budget, round(noise.sigma, 2), round(signal.high, 2), replicates, sampler=sampler,
                  repeats=repeats, repeat_share=repeat_share, processes=max(1, min(os.cpu_count() or 1, 2 * replicates)))
    return (f"if the placements differed by as much as this study allows (between-genome std {signal.high:.1f} pp, "
            f"the upper end of its interval), {answer.summary()}")


def print_result(study: optuna.Study, space: SearchSpace, storage_url: str, study_dir: Path, repeats: int,
                 planner: tuple[str, int, float | None] | None = None) -> None:
    """The front of ``study`` beyond seed noise, how the search stands against its ``repeats``,
    the paper's configurations and the one-shot agreement; then the report written into
    ``<study_dir>/report`` (and stored as the study's artifacts) and how to open the dashboard.
    ``planner`` (the search's sampler, replicates, repeat share): when the placements are not told apart, what
    the planner expects of this budget at the study's σ (``planner_answer``)."""
    front = Front.of_study(study)
    print(f"\n{front.noise.describe()}\n{front.signal.verdict(front.noise)}")
    if planner is not None:
        answer = planner_answer(front, space, finished_count(study), repeats, *planner)
        if answer:
            print(answer)
    trained = front.selection.trained.name
    table = genomes_table(front, members_only=True).drop(columns=[f"{trained}_ci95", "first_trial", "verdict"])
    costs = ", ".join(f"{o.column} = {o.label}" for o in front.selection.computed)
    print(f"\nFront of {shown(repr(study.study_name))} beyond seed noise ({len(table)} genomes; top-1 % on the "
          f"validation split, mean and std over seeds, and shrunk toward the study's mean; {costs}, at 224 px):")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 80):
        print(shown_table(table).to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-") if len(table)
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
            print(f"  {shown(status.describe())}")
    if agreement is not None:
        print("\n" + "\n".join(map(shown, agreement.lines())))
    url_shown = shown_url(storage_url)
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url.removeprefix("sqlite:///"))
        try:
            url_shown = f"sqlite:///{path.relative_to(Path.cwd())}"
        except ValueError:
            pass
    try:
        summary = write_report(study, study_dir / "report", root=study_dir)
    except LinkRefused as error:  # a symbolic link in the study folder: nothing is written through it
        fail(str(error))
    except ValueError:
        summary = None  # no complete trial yet: nothing to report
    if summary is not None:
        print(f"\nhypervolume of the genome means {summary.hypervolume:.4f} ({summary.reference.describe()})")
        print(shown(f"report: {summary.files[0]} (and {', '.join(f.name for f in summary.files[1:])} beside it)"))
        try:
            store = artifact_store(study_dir)  # writes nothing through a symbolic link (safe_files)
            for path in summary.files:
                optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
        except LinkRefused as error:
            fail(str(error))
    print(f"\nOpen the dashboard on this study:\n  {shown(f'python -m ulsam_nas.dashboard --study {study_dir}')}"
          f"\n  {shown(f'(or: optuna-dashboard {url_shown} --artifact-dir {study_dir / ARTIFACTS})')}")


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its text cells (genomes, labels) as ``names.shown`` prints them."""
    text = table.select_dtypes(include=["object", "string"]).columns
    return table.assign(**{column: table[column].map(lambda v: shown(v) if isinstance(v, str) else v) for column in text})
