"""``--strategy oneshot``: one supernet training scores thousands of placements, the best of them
are confirmed by standalone training, and the study says how far the one-shot ranking held.

1. **Supernet.** ``supernet.train_supernet`` at the search's fidelity (``--supernet-epochs``,
   default 4x the fidelity's: every path sees only a share of the steps), as one Ray Tune trial
   on a GPU when there is one. It checkpoints every epoch into the study folder
   (``<study>/supernet/<key>/``, keyed by space, data, fidelity, seed and split): a run killed
   mid-training resumes from its last epoch, and later searches of the study reuse it.
2. **Exploration.** Optuna's sampler proposes genomes; each is scored by its path's validation
   top-1 with the inherited weights after BatchNorm re-estimation (``supernet.PathScorer``), in
   the driver, in a study of its own (``<name>-oneshot``, trials with ``score_source=oneshot``),
   until it holds ``--budget`` finished trials. Paper configurations are scored first. Costs and
   ``--max-NAME`` limits are those of a standalone search.
3. **Confirmation.** The top ``--confirm`` genomes of the one-shot ranking (non-dominated
   sorting on the one-shot score and the costs, best score first within a front), every paper
   configuration, and ``--confirm-panel`` random genomes of the space train standalone into the
   search study itself (``score_source=standalone``). The top genomes get ``--repeats`` seeds,
   the others one; with a random panel every one of them gets at least ``PANEL_SEEDS``, which
   the ceiling below needs. The front, the picks, the report and export read that study:
   confirmed values only.
4. **Honesty.** Kendall τ and Spearman ρ between one-shot scores and standalone means over the
   genomes trained (the random panel scored by the supernet too), with bootstrap 90% intervals,
   beside the ceiling (split-half τ of the standalone means) and the τ of ranking by MACs and by
   params, are printed and stored on the study (``oneshot``). A τ interval that includes 0 prints
   a warning (Yu et al. 2020 found weight-sharing rankings close to random), and so does a τ not
   above ranking by MACs or params.

One driver per study in this mode: the one-shot study's leftover RUNNING trials are closed when
it starts.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray import tune

from ..analysis.agreement import RankAgreement
from ..analysis.front import Front
from ..analysis.objectives import Context, Selection, over_limit
from ..analysis.pareto import nondominated_fronts
from ..data.cache import cache_key
from ..models.genome import Genome
from ..models.spaces import SearchSpace, random_genomes
from ..report.publish import DashboardPublisher
from ..studies import StudyLock, open_storage
from .ledger import close_interrupted, open_study
from .policy import FINISHED, SearchPolicy
from .runner import SearchConfig, make_tuner, open_search_study, search_identity, train_plan
from .trainable import set_up_worker

SUPERNET_EPOCH_FACTOR = 4
PANEL_SEEDS = 2  # seeds of every genome of the agreement's panel: the split-half ceiling needs two
ONESHOT_SUFFIX = "-oneshot"
PROGRESS_SECONDS = 5.0


# -- 1. the supernet, as one Ray Tune trial ---------------------------------------------------------------


def supernet_folder(config: SearchConfig, epochs: int) -> Path:
    key = {"space": config.space.name, "data": str(config.data), "fidelity": config.fidelity.name, "epochs": epochs,
           "seed": config.seed, "val_fraction": config.val_fraction, "num_classes": config.num_classes}
    return config.study_dir / "supernet" / cache_key(json.dumps(key, sort_keys=True))


def supernet_trial(tune_config: dict, config: SearchConfig, epochs: int, folder: str) -> None:
    """The Ray Tune trainable: train (or resume) the supernet, reporting every epoch."""
    from ..train.supernet import train_supernet

    device = set_up_worker()
    train_supernet(config.space, config.data, config.fidelity, config.num_classes, config.seed, Path(folder),
                   epochs=epochs, report=lambda epoch, metrics: tune.report(dict(metrics)), device=device,
                   val_fraction=config.val_fraction, root=config.study_dir)


class SupernetProgress(tune.Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        print(f"supernet: epoch {result.get('epoch')}/{self.epochs}, loss {result.get('loss', float('nan')):.3f}, "
              f"{result.get('seconds', 0):.0f}s", file=sys.stderr, flush=True)


def train_supernet_on_ray(config: SearchConfig, epochs: int, folder: Path, resources: dict[str, float]) -> None:
    if (folder / "done").is_file():
        print(f"supernet: reusing {folder} ({epochs} epochs)", file=sys.stderr)
        return
    checkpoint = folder / "supernet.pt"
    if checkpoint.is_file():
        import torch

        finished = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
        print(f"supernet: resuming after epoch {finished} of {epochs} ({checkpoint})", file=sys.stderr)
    else:
        print(f"supernet: training {epochs} epochs at fidelity {config.fidelity.name} into {folder} "
              f"(a stopped run resumes from its last epoch)", file=sys.stderr)
    # A fresh trial picks the run up from the checkpoint; Ray's own experiment state is not needed.
    tuner = make_tuner(supernet_trial, {"config": config, "epochs": epochs, "folder": str(folder.resolve())},
                       resources, "supernet", config.study_dir, SupernetProgress(epochs))
    results = tuner.fit()
    if results.errors:
        raise RuntimeError(f"supernet training failed: {results.errors[0]}")
    (folder / "done").write_text("")


# -- 2. exploration on one-shot scores ---------------------------------------------------------------------


def explore(study: optuna.Study, config: SearchConfig, selection: Selection, context: Context, scorer) -> None:
    """Score genomes the sampler proposes until the one-shot study holds ``config.budget`` finished
    trials, through the search policy with one seed per genome: a genome proposed again reuses its score."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # One driver per one-shot study: what it left RUNNING was interrupted.
        study.tell(trial.number, state=TrialState.FAIL)
    # A resumed exploration continues the sampler's stream instead of replaying it.
    policy = SearchPolicy(study, config.space, selection, context, config.budget, base_seed=config.seed, repeats=1,
                          limits=config.limits, paper_seeds=config.paper_seeds, trial_attrs={"score_source": "oneshot"},
                          sampler=config.sampler, sampler_seed=config.seed + len(study.get_trials(deepcopy=False)))
    policy.read()
    started = last = time.time()
    done_here = 0

    def progress() -> None:
        elapsed = time.time() - started
        print(f"oneshot: {policy.tally.finished}/{config.budget} trials, {len(policy.completed)} genomes scored "
              f"({elapsed / max(done_here, 1):.2f}s per genome), elapsed {elapsed:.0f}s", file=sys.stderr, flush=True)

    # A genome proposed again is answered inside next_training (its score reused), up to the budget.
    while (training := policy.next_training()) not in (FINISHED, None):
        try:
            score = scorer(Genome.from_string(training.genome))
        except Exception as error:  # noqa: BLE001 - a failure fails this trial only, with its reason
            policy.finish(training.trial, TrialState.FAIL, failure=f"{type(error).__name__}: {error}")
        else:
            policy.finish(training.trial, TrialState.COMPLETE, score)
            done_here += 1
        if time.time() - last >= PROGRESS_SECONDS:
            last = time.time()
            progress()
    progress()


def oneshot_ranking(study: optuna.Study, selection: Selection) -> list[tuple[str, float]]:
    """(genome, one-shot score), best first: by non-dominated sorting of (score, costs), best
    score first within a front."""
    best: dict[str, list[float]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best.setdefault(trial.user_attrs["genome"], trial.values)
    genomes = list(best)
    points = [tuple(-v if o.direction == "maximize" else v for o, v in zip(selection.objectives, best[g]))
              for g in genomes]
    order = []
    for front in nondominated_fronts(points):
        order += sorted((genomes[i] for i in front), key=lambda g: -selection.split(best[g])[0])
    return [(g, selection.split(best[g])[0]) for g in order]


# -- 3. confirmation and agreement ------------------------------------------------------------------------------


def space_size(space: SearchSpace) -> int:
    """How many distinct genomes the space holds (a kept layer's group count is no choice)."""
    size = len(space.width_mults)
    for layer in space.layers:
        choice = space.choice(layer)
        placing = [a for a in choice.actions if a != "keep"]
        size *= ("keep" in choice.actions) + len(placing) * len(choice.groups)
    return size


def random_panel(config: SearchConfig, count: int, exclude: set[str], selection: Selection,
                 context: Context) -> list[Genome]:
    """Up to ``count`` random genomes of the space (``spaces.random_genomes``, seeded by the
    search's seed), none of ``exclude`` and none over a ``--max-NAME`` limit; fewer only when the
    space holds fewer."""
    space = config.space
    skip = {Genome.from_string(g) for g in exclude}
    left = space_size(space) - sum(space.contains(g) for g in skip)
    panel: list[Genome] = []
    while len(panel) < count and left > 0:
        try:
            drawn = random_genomes(space, min(count - len(panel), left), config.seed, skip)
        except ValueError:  # it gives up after 100 draws a genome: the few genomes left are hard to hit
            break
        skip.update(drawn)
        left -= len(drawn)
        panel += [g for g in drawn if not over_limit(selection.costs(g, context, config.limits), config.limits)]
    return panel


def measure_agreement(front: Front, scores: dict[str, float], scorer, context: Context) -> RankAgreement:
    """One-shot scores against the standalone means of every genome the study trained, with the
    ceiling and cost baselines of those means. Genomes the exploration never scored (the random
    panel) are scored here."""
    scores = dict(scores)
    for stats in front.stats:
        if stats.genome not in scores:
            scores[stats.genome] = scorer(Genome.from_string(stats.genome))
    runs = {s.genome: [score for _, score in sorted(zip(s.seeds, s.scores))] for s in front.stats}
    costs = {g: (float(cost.macs), float(cost.params)) for g, cost in
             ((g, context.cost(Genome.from_string(g))) for g in runs)}
    return RankAgreement.of(scores, runs, costs)


# -- the whole run -------------------------------------------------------------------------------------------


def run_oneshot(config: SearchConfig, confirm: int, supernet_epochs: int | None = None, trainer=None,
                confirm_panel: int = 0) -> optuna.Study:
    """Supernet, exploration, confirmation and rank agreement (module docstring); returns the
    search study (confirmed trainings). ``confirm_panel`` random genomes join the confirmation
    (and every genome it trains gets PANEL_SEEDS seeds or more). Ray must be initialised by the
    caller."""
    from ..train.supernet import PathScorer, train_supernet

    selection = Selection.parse(config.objectives, config.cost_tolerance)
    context = Context(config.space, config.num_classes, config.latency_device, config.latency_threads)
    reference = selection.reference_point(context)
    epochs = supernet_epochs or SUPERNET_EPOCH_FACTOR * config.fidelity.epochs
    folder = supernet_folder(config, epochs)
    resources = {"cpu": config.cpus_per_trial * config.concurrency if not config.gpus_per_trial else config.cpus_per_trial,
                 "gpu": 1.0 if config.gpus_per_trial else 0.0}
    train_supernet_on_ray(config, epochs, folder, resources)
    supernet = train_supernet(config.space, config.data, config.fidelity, config.num_classes, config.seed, folder,
                              epochs=epochs, val_fraction=config.val_fraction,
                              root=config.study_dir)  # finished: loads the checkpoint
    scorer = PathScorer(supernet, config.data, config.val_fraction)

    storage = open_storage(config.storage_url)
    oneshot_study = open_study(storage, config.study_name + ONESHOT_SUFFIX, search_identity(config, context, "oneshot"),
                               selection)
    explore(oneshot_study, config, selection, context, scorer)

    ranking = oneshot_ranking(oneshot_study, selection)
    chosen = [g for g, _ in ranking[:confirm]]
    labels = {str(g): label for g, label in config.space.paper_genomes() if config.space.contains(g)} \
        if config.paper_seeds else {}
    panel = [str(g) for g in random_panel(config, confirm_panel, {*chosen, *labels}, selection, context)]
    # The ceiling (split-half τ) needs two seeds of every genome the agreement is measured on.
    top_seeds = max(config.repeats, PANEL_SEEDS) if confirm_panel else config.repeats
    other_seeds = PANEL_SEEDS if confirm_panel else 1
    seeds = [config.seed + k for k in range(top_seeds)]
    jobs = [(config.fidelity.name, g, s) for g in chosen for s in seeds]
    jobs += [(config.fidelity.name, g, config.seed + k) for g in [*(g for g in labels if g not in chosen), *panel]
             for k in range(other_seeds)]
    lock = StudyLock(config.storage_url, config.study_name)
    with lock:
        study = open_search_study(storage, config, selection, context, reference, "oneshot")
        close_interrupted(study, storage)
    lock.close()
    done = {(t.user_attrs["genome"], t.user_attrs["seed"])
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    todo = [job for job in jobs if (job[1], job[2]) not in done]
    others = [f"{len(labels)} paper configurations"] if labels else []
    others += [f"{len(panel)} random genomes"] if panel else []
    print(f"confirm: the top {len(chosen)} of {len(ranking)} one-shot genomes with {len(seeds)} seed(s) each"
          + (f", and {' and '.join(others)} with {other_seeds}" if others else "")
          + f": {len(todo)} of {len(jobs)} trainings to run", file=sys.stderr)
    if todo:
        train_plan(study, storage, todo, config.data, config.space, config.num_classes, config.val_fraction,
                   config.resources, config.concurrency, config.study_dir, trainer,
                   objectives=(selection, context), attrs={"score_source": "standalone"},
                   task="confirm")

    agreement = measure_agreement(Front.of_study(study), dict(ranking), scorer, context)
    study.set_user_attr("oneshot", {"study": oneshot_study.study_name, "budget": config.budget, "confirm": chosen,
                                    "panel": panel, "supernet": str(folder), "supernet_epochs": epochs,
                                    **agreement.to_json()})
    DashboardPublisher(study, storage).publish(len(done) + len(todo))  # the confirmed front, as a standalone search ends
    return study
