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
from ..analysis.front import Front, PaperStatus, genomes_table, paper_status
from ..analysis.picks import knee
from ..cli import fail
from ..models.spaces import SearchSpace
from ..names import shown
from ..report.genome_study import genome_study_name
from ..report.wording import costs_text, genome_name, seed_spread
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


TOP = 10  # front genomes printed, by shrunk mean; the rest are in pareto.csv (or the terminal with --full-front)


def print_result(study: optuna.Study, space: SearchSpace, storage_url: str, study_dir: Path, repeats: int,
                 planner: tuple[str, int, float | None] | None = None, full_front: bool = False) -> None:
    """What a search prints at its end, in the order a user reads it, within a screen: σ and the
    signal sentence (and the planner's answer when the placements are not told apart), the knee
    and the top ``TOP`` of the front by shrunk mean (all of it with ``full_front``), how the search
    stands against its ``repeats``, the paper's configurations in one compact table, the one-shot
    agreement, then the report written into ``<study_dir>/report`` (stored as the study's
    artifacts: where the full tables are) and how to open the dashboard. ``planner`` (the search's
    sampler, replicates, repeat share): see ``planner_answer``."""
    front = Front.of_study(study)
    print(f"\n{front.noise.describe()}\n{front.signal.verdict(front.noise)}")
    if planner is not None:
        answer = planner_answer(front, space, finished_count(study), repeats, *planner)
        if answer:
            print(answer)
    trained = front.selection.trained.name
    table = genomes_table(front, members_only=True).drop(columns=[f"{trained}_ci95", "first_trial", "verdict"])
    costs = ", ".join(f"{o.column} = {o.label}" for o in front.selection.computed)
    if len(table):
        chosen = knee(front)
        print("\n" + shown(f"Knee: {genome_name(chosen)}, {costs_text(front, chosen)}, top-1 {front.estimate(chosen):.2f}% "
                           f"shrunk ({seed_spread(chosen.scores)})"))
    shown_rows = table if full_front else table.head(TOP)
    print(f"{'' if len(table) else chr(10)}Front of {shown(repr(study.study_name))} beyond seed noise: {len(table)} genomes"
          + ("" if len(shown_rows) == len(table) else f", the top {len(shown_rows)} by shrunk mean")
          + f" (top-1 % on the validation split, mean and std over seeds, and shrunk toward the study's mean; {costs}, "
            f"at 224 px):")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 80):
        print(aligned(shown_table(shown_rows), float_format=lambda v: f"{v:.2f}", na_rep="-")
              if len(table) else "(no complete trial yet)")
    if len(shown_rows) < len(table):
        print(f"... {len(table) - len(shown_rows)} more front genomes in pareto.csv (or rerun with --full-front)")
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
        print("\nThe paper's configurations (a rival is named by its first trial, the first_trial column of "
              "genomes.csv):")
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
            print(aligned(shown_table(paper_table(statuses))))
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
        print(shown(f"full tables: {summary.files[0].parent}/ genomes.csv (every genome), pareto.csv (the front), "
                    f"report.html (figures, verdicts in full)"))
        try:
            store = artifact_store(study_dir)  # writes nothing through a symbolic link (safe_files)
            for path in summary.files:
                optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
        except LinkRefused as error:
            fail(str(error))
    print(f"\nOpen the dashboard on this study: {shown(f'python -m ulsam_nas.dashboard --study {study_dir}')}"
          f"\n  {shown(f'(or: optuna-dashboard {url_shown} --artifact-dir {study_dir / ARTIFACTS}, and open the study ')}"
          f"{shown(repr(genome_study_name(study.study_name)))}: genome means over seeds)")


def paper_table(statuses: list[PaperStatus]) -> pd.DataFrame:
    """One row per trained paper configuration: label, mean ± std over seeds, seeds, verdict and,
    for "within noise" and "dominated", the rival by its first trial and the difference."""
    rows = []
    for status in statuses:
        s, verdict = status.stats, status.verdict
        rival = "" if verdict.kind == "front" else f"trial {verdict.other.trial} ({verdict.difference:+.1f} pp)"
        rows.append({"configuration": status.label,
                     "top-1 %": f"{s.mean:.1f}" + (f" ± {s.std:.1f}" if s.std is not None else ""), "n": s.n,
                     "verdict": {"front": "on the front", "within-noise": "within noise of",
                                 "dominated": "clearly dominated by"}[verdict.kind], "rival": rival})
    return pd.DataFrame(rows)


def aligned(table: pd.DataFrame, **to_string) -> str:
    """``table`` as text with its text columns (genomes, labels, verdicts) left-aligned, numbers right."""
    text = table.select_dtypes(include=["object", "string"]).columns
    widths = {c: max([len(str(c)), *(len(str(v)) for v in table[c])]) for c in text}
    formatters = {c: (lambda width: lambda v: str(v).ljust(width))(widths[c]) for c in text}
    return table.to_string(index=False, formatters=formatters, justify="left", **to_string)


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its text cells (genomes, labels) as ``names.shown`` prints them."""
    text = table.select_dtypes(include=["object", "string"]).columns
    return table.assign(**{column: table[column].map(lambda v: shown(v) if isinstance(v, str) else v) for column in text})
