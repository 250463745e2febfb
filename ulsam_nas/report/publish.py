"""The product's front in optuna-dashboard: figures and a note stored in the study itself.

optuna-dashboard's own Pareto front is per trial: a genome with one lucky seed can sit on it.
``publish_front`` stores, with optuna-dashboard's public API, what the product calls the front:
one figure per cost of the genome means over seeds with their 95% confidence intervals and the
paper configurations marked (``figures.front_figure``, the report's figure), and the study note:
σ, the between-genome signal, the front's size and the paper verdicts. It also rebuilds the genome
study beside the trial study (``genome_study``: one trial per genome at its mean over seeds), on
which optuna-dashboard's own plots show genome means, with the same figures and a note of its own.
A search refreshes them as it runs (``DashboardPublisher``).

How optuna-dashboard (0.21) stores them, in study system attributes: a figure's Plotly JSON
in chunks of 2045 characters under ``dashboard:plot_data:<graph object id>:<i>``; saving with
the same ``graph_object_id`` writes the chunks again and blanks those left over, so the stable
ids here (``ulsam-front-<cost>``) replace a figure rather than add one. The note's markdown in
chunks under ``dashboard:note_str:<i>`` with a version ``dashboard:note_ver``; ``save_note``
writes the next version over it, replacing the note, a note typed in the dashboard included.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

from ..analysis.front import Front, paper_status
from ..analysis.objectives import Objective
from .escaping import markdown_text
from .figures import front_figure
from .genome_study import genome_note, genome_study_name, rebuild_genome_study

if TYPE_CHECKING:
    from ..studies import StudyLock

PUBLISH_EVERY_COMPLETE = 10  # a search publishes after this many more COMPLETE trials...
PUBLISH_MIN_SECONDS = 60.0  # ...and no sooner than this after its last publication...
PUBLISH_SHARE = 0.05  # ...nor sooner than keeps publishing to this share of the driver's time
VERDICT_NAMES = (("front", "on the front"), ("within-noise", "within noise of a front genome"),
                 ("dominated", "clearly dominated"))


def graph_object_id(objective: Objective) -> str:
    """The figure's id in the dashboard, the same at every publication so that it is replaced."""
    return f"ulsam-front-{objective.name}"


def figure_title(study: optuna.Study, objective: Objective) -> str:
    target = study.user_attrs.get("latency_target", "") if objective.name == "latency" else ""
    return f"Genome means over seeds: top-1 vs {objective.label}" + (f" on {target}" if target else "")


def front_lines(study: optuna.Study, front: Front) -> list[str]:
    """σ, the signal, the front's size and the paper verdicts, one markdown item each."""
    trials = study.get_trials(deepcopy=False)
    labels = list(dict.fromkeys(t.user_attrs["paper_label"] for t in trials if t.user_attrs.get("paper_label")))
    statuses = paper_status(front, labels)
    groups = [(name, [s.label for s in statuses if s.verdict is not None and s.verdict.kind == kind])
              for kind, name in VERDICT_NAMES]
    unfinished = [s.label for s in statuses if s.stats is None]
    if unfinished:
        groups.append(("not trained to completion yet", unfinished))
    paper = "; ".join(f"{len(named)} {name}" + (f" ({', '.join(map(markdown_text, named))})" if named else "")
                      for name, named in groups)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    return [
        f"- {front.noise.describe()}",
        f"- {front.signal.verdict(front.noise)}",
        f"- front beyond seed noise: {len(front.members)} of {len(front.stats)} genomes",
        f"- paper configurations: {paper}" if labels else "- no paper configuration in this study",
        "",
        ("A genome is called clearly dominated only when one of no worse cost has a mean top-1 higher by more than a "
         "simultaneous bound, t(1 - 0.05/m) standard errors with m the genomes of no worse cost, which keeps the "
         "chance of calling it dominated wrongly to 5% per genome."),
        "",
        (f"*Published by the search after {complete} complete trials; refreshed every {PUBLISH_EVERY_COMPLETE} "
         f"complete trials (no sooner than {PUBLISH_MIN_SECONDS:.0f} s after the last time) and at its end.*"),
    ]


def front_note(study: optuna.Study, front: Front) -> str:
    """The trial study's note (markdown): which study is which, then ``front_lines``."""
    return "\n".join([
        "### The front over seeds",
        "",
        ("This study records every training: one trial per genome and seed. Optuna's Pareto front on its first page is "
         f"therefore per trial, and a lucky seed can put a genome on it. The study *{markdown_text(genome_study_name(study.study_name))}* "
         "beside it holds one trial per genome at its mean over seeds: Optuna's own plots there show genome means. "
         "The figures *Genome means over seeds* at the foot of either page show one point per genome at its mean top-1 "
         "over seeds, error bars the 95% confidence interval of the mean, the front beyond seed noise highlighted and the "
         "paper configurations, the knee and the vanilla backbone labelled."),
        "",
        *front_lines(study, front),
    ])


def save_figures(studies: list[optuna.Study], front: Front, verdicts: dict[str, str], title_of: optuna.Study) -> None:
    """The front's figures, one per cost, each drawn once and stored in every study of ``studies``
    (titles from ``title_of``'s attributes)."""
    from optuna_dashboard import save_plotly_graph_object

    for objective in front.selection.computed:
        # The dashboard gives each figure a box of its own height, too small for a label per paper configuration.
        figure = front_figure(front, verdicts, objective, figure_title(title_of, objective), paper_labels=False)
        figure.update_layout(height=None)
        for study in studies:
            save_plotly_graph_object(study, figure, graph_object_id=graph_object_id(objective))


def publish_front(study: optuna.Study, storage: optuna.storages.RDBStorage) -> None:
    """Store the front's figures, one per cost, and the note in the study for optuna-dashboard,
    replacing those of an earlier publication, and rebuild the genome study beside it
    (``genome_study.rebuild_genome_study``) with the same figures. Nothing while no trial is COMPLETE."""
    # Imported here, not with the module: only a driver that publishes needs optuna-dashboard.
    from optuna_dashboard import save_note

    front = Front.of_study(study)
    if not front.stats:
        return
    verdicts = {s.genome: front.verdict(s).describe() for s in front.stats}
    save_note(study, front_note(study, front))
    rebuild_genome_study(study, storage, front, genome_note(study.study_name, front_lines(study, front)))
    genomes = optuna.load_study(study_name=genome_study_name(study.study_name), storage=storage)
    save_figures([study, genomes], front, verdicts, study)


class DashboardPublisher:
    """``publish_front`` while a search runs: once ``every`` more trials are COMPLETE and at least
    ``min_seconds`` have passed since the last time, and no sooner than keeps publishing to
    ``PUBLISH_SHARE`` of the driver's time (a publication grows with the genomes: 7 s for
    4,675 on SQLite), and at the end. The dashboard is a view: a failure
    never stops the search; it is reported once, and later publications are still tried.

    Of the drivers sharing a study, one publishes: the first to take the study's publishing lock
    (``lock``, ``StudyLock(..., purpose="publish")``) without waiting keeps it until its search
    ends (``close``) or it dies. The others skip their publications meanwhile, instead of
    rebuilding the same genome study in turn (each rebuild takes seconds on a large
    study) or waiting; one of them takes over once the lock is free. A driver ends only when the
    study holds its budget, so whichever publishes last publishes it whole."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage, lock: StudyLock | None = None,
                 every: int = PUBLISH_EVERY_COMPLETE, min_seconds: float = PUBLISH_MIN_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.study, self.storage, self.lock = study, storage, threading.Lock() if lock is None else lock
        self.every, self.min_seconds, self.clock = every, min_seconds, clock
        self.complete_when_published, self.published_at, self.took = 0, clock(), 0.0
        self.warned = self.publishing = False

    def on_progress(self, complete: int) -> None:
        """Called often (every step of the search): publishes only when it is due."""
        wait = max(self.min_seconds, self.took / PUBLISH_SHARE)
        if complete - self.complete_when_published >= self.every and self.clock() - self.published_at >= wait:
            self.publish(complete)

    def publish(self, complete: int) -> None:
        """Publish now, unless another driver of the study is the one publishing."""
        self.complete_when_published, started = complete, self.clock()
        try:
            self.publishing = self.publishing or self.lock.acquire(blocking=False)
            if self.publishing:
                publish_front(self.study, self.storage)
        except Exception as error:  # noqa: BLE001 - the dashboard is a view: it never fails the search
            if not self.warned:
                self.warned = True
                print(f"\nthe dashboard's front figures and note were not refreshed ({type(error).__name__}: {error}); "
                      f"the search goes on", file=sys.stderr, flush=True)
        finally:
            self.published_at = self.clock()
            self.took = self.published_at - started if self.publishing else 0.0

    def close(self) -> None:
        """Hand publishing over to the study's other drivers (the end of this driver's search)."""
        if self.publishing:
            self.publishing = False
            self.lock.release()
