"""The report's tables, as pandas frames: every training with its own values (``trials_frame``,
trials.csv), every genome with its test-split figures beside its validation ones
(``genomes_with_tests``, genomes.csv and pareto.csv), the final retraining's test figures
(``final_tests``, ``final_rows``) and the one-shot scores beside the standalone means
(``oneshot_table``). One column per objective of the study.
"""

from __future__ import annotations

import statistics

import optuna
import pandas as pd

from ..analysis.agreement import RankAgreement
from ..analysis.front import Front, trial_seed
from ..analysis.objectives import Selection
from .wording import seed_spread


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per training (trial), its own values, one column per objective: the seed-level
    data behind genomes.csv. The computed objectives are there for every trial that got a genome."""
    names = Selection.of_study(study).names
    columns = ["trial", "state", "genome", "label", "seed", "repeat_of", "reused_from", *names, "seconds", "failure"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        complete = t.state == optuna.trial.TrialState.COMPLETE
        values = dict(zip(names, t.values)) if complete else {n: t.user_attrs.get(n) for n in names}
        rows.append({
            "trial": t.number, "state": t.state.name, "genome": t.user_attrs.get("genome", ""),
            "label": t.user_attrs.get("paper_label", ""), "seed": trial_seed(t), "repeat_of": t.user_attrs.get("repeat_of"),
            "reused_from": t.user_attrs.get("reused_from"), **values,
            "seconds": t.user_attrs.get("seconds"), "failure": t.user_attrs.get("failure") or t.user_attrs.get("infeasible", ""),
        })
    # Nullable integers, so the trial numbers read 3, not 3.0, beside the empty cells.
    return pd.DataFrame(rows, columns=columns).astype({"repeat_of": "Int64", "reused_from": "Int64"})


def final_tests(study: optuna.Study) -> dict[str, dict[str, list[float]]]:
    """Test-split top-1 and top-5 per genome, one value per seed, from the search's ``--final``
    retraining (``study.user_attrs["final_test"]``); empty without it."""
    return {genome: {metric: [float(r[metric]) for r in by_seed.values()] for metric in ("top1", "top5")}
            for genome, by_seed in study.user_attrs.get("final_test", {}).items()}


def final_rows(front: Front, tests: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Each finally retrained genome's validation figure from the search beside its test figures."""
    by_genome = front.by_genome()
    rows = []
    for genome, test in tests.items():
        stats = by_genome.get(genome)
        rows.append({"genome": genome, "label": stats.label if stats else "",
                     "validation top-1": seed_spread(stats.scores) if stats else "not in this study",
                     "test top-1": seed_spread(test["top1"]), "test top-5": seed_spread(test["top5"])})
    return rows


def genomes_with_tests(table: pd.DataFrame, tests: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """``front.genomes_table`` plus the test-split top-1 of the genomes that were finally retrained (else empty)."""
    top1 = [tests.get(genome, {}).get("top1", []) for genome in table["genome"]]
    return table.assign(test_top1_mean=[statistics.fmean(v) if v else None for v in top1],
                        test_top1_std=[statistics.stdev(v) if len(v) > 1 else None for v in top1],
                        test_seeds=pd.array([len(v) or None for v in top1], dtype="Int64"))


def oneshot_table(front: Front, agreement: RankAgreement) -> pd.DataFrame:
    """One-shot score beside the standalone figures, one row per genome trained standalone."""
    by_genome = front.by_genome()
    rows = [{"genome": genome, "label": by_genome[genome].label, "one-shot top-1": score,
             "standalone top-1": seed_spread(by_genome[genome].scores), "standalone mean": mean}
            for genome, (score, mean) in agreement.pairs.items() if genome in by_genome]
    return pd.DataFrame(rows).sort_values("one-shot top-1", ascending=False)
