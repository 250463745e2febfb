"""A search without Ray: the search policy (``search.policy.SearchPolicy``) driven over a
landscape's trainer (``landscapes.trainer.train``, the function a Ray trial calls on
``--dataset landscape:...``), with its study in memory. What differs from ``search.runner`` is only
what Ray does there: running trainings side by side. Here ``concurrency`` trainings are in flight
at once and finish in the order of the seconds their reports give, so a simulation sees the
policy's waits and in-flight bookkeeping as a real search at that concurrency would.

This is what the planner (``python -m ulsam_nas.simulate``) and ``benchmarks/search_quality.py``
run many times: one search of 200 trainings takes seconds.
"""

from __future__ import annotations

import heapq
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from ..analysis.front import COST_TOLERANCE, Front
from ..analysis.objectives import DEFAULT, Context, Selection
from ..data import DataSpec
from ..landscapes import Landscape, load_landscape
from ..landscapes.trainer import train
from ..models.genome import Genome
from ..models.spaces import SearchSpace
from ..search.policy import DEFAULT_SAMPLER, FINISHED, SearchPolicy, Training
from ..studies import open_storage
from ..train.fidelity import get_fidelity


@dataclass
class SimulatedSearch:
    """A finished simulated search: its study, and the policy's view of it at the end (the front
    the product reports is ``policy.front``)."""

    study: optuna.Study
    policy: SearchPolicy
    landscape: Landscape
    selection: Selection
    context: Context

    @property
    def front(self) -> Front:
        return self.policy.front


def simulate_search(space: SearchSpace, landscape: str, budget: int, *, sampler: str = DEFAULT_SAMPLER, seed: int = 0,
                    repeats: int = 3, concurrency: int = 1, objectives: str = DEFAULT, fidelity: str = "smoke",
                    paper_seeds: bool = True, cost_tolerance: float = COST_TOLERANCE, repeat_share: float | None = None,
                    storage: str | optuna.storages.BaseStorage | None = None,
                    study_name: str = "simulated") -> SimulatedSearch:
    """Run a search of ``budget`` trainings on ``landscape`` (``landscape:TEXT``'s TEXT) as
    ``run_search`` would with these settings, without Ray. ``storage`` None: in memory; a URL is
    opened as a search opens it (``studies.open_storage``: SQLite in write-ahead-log mode)."""
    truth = load_landscape(landscape, space)
    data = DataSpec.parse(f"landscape:{landscape}")
    training_fidelity = get_fidelity(fidelity, space.backbone)
    selection = Selection.parse(objectives, cost_tolerance)
    context = Context(space, truth.num_classes)
    with warnings.catch_warnings():  # Optuna's experimental parts: multi-objective TPE and GP, metric names
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if isinstance(storage, str):
            storage = open_storage(storage)
        study = optuna.create_study(storage=storage, study_name=study_name, directions=selection.directions)
        study.set_metric_names(selection.names)  # as a search's study names them (ledger.open_search_study)
        policy = SearchPolicy(study, space, selection, context, budget, base_seed=seed, repeats=repeats,
                              paper_seeds=paper_seeds, sampler=sampler, repeat_share=repeat_share,
                              trial_attrs={"fidelity": training_fidelity.name, "dataset": str(data)})
        clock, order = 0.0, 0
        running: list[tuple[float, int, Training, float]] = []  # (finish time, order, training, top-1)
        while True:
            while len(running) < concurrency:
                policy.read()  # as the Ray searcher does before every suggestion
                training = policy.next_training()
                if training is None or training == FINISHED:
                    break
                final = _train(training, data, training_fidelity)
                heapq.heappush(running, (clock + final["seconds"], order, training, final["top1"]))
                order += 1
            if not running:
                break
            clock, _, training, top1 = heapq.heappop(running)
            policy.finish(training.trial, TrialState.COMPLETE, top1)
    return SimulatedSearch(study, policy, truth, selection, context)


def _train(training: Training, data: DataSpec, fidelity) -> dict:
    """The landscape trainer's last report for this training, as a Ray trial would send it."""
    reports: list[dict] = []
    train(Genome.from_string(training.genome), data, fidelity, seed=training.seed,
          report=lambda epoch, metrics: reports.append(metrics), evaluate_on="val")
    return reports[-1]
