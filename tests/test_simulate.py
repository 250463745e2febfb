"""The simulation's truth (``simulate.truth``) and the planner (``simulate.planner``, ``python -m ulsam_nas.simulate``)."""

from __future__ import annotations

import itertools
import math

import pytest

from ulsam_nas.analysis.pareto import nondominated
from ulsam_nas.cost import count_cost
from ulsam_nas.landscapes import load_landscape
from ulsam_nas.models.genome import Genome, Placement
from ulsam_nas.models.spaces import load_space
from ulsam_nas.simulate.command import main
from ulsam_nas.simulate.driver import simulate_search
from ulsam_nas.simulate.planner import plan
from ulsam_nas.simulate.truth import score, true_front

TINY = ('name = "tiny"\nbackbone = "mv2"\nwidth_mults = [1.0, 0.5]\n\n[layers]\n'
        '16 = { actions = ["keep", "insert", "substitute"], groups = [1, 8] }\n'
        '17 = { actions = ["keep", "substitute"], groups = [1, 8] }\n'
        '18 = { actions = ["keep", "insert"], groups = [1, 8] }\n')


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return load_space(path)


def every_genome(space):
    per_layer = [[None] + [Placement(layer, a, g) for a in choice.actions if a != "keep" for g in choice.groups]
                 for layer, choice in sorted(space.layers.items())]
    for width in space.width_mults:
        for combo in itertools.product(*per_layer):
            yield Genome(space.backbone, tuple(p for p in combo if p is not None), width)


@pytest.mark.parametrize("text", ["additive,seed=3", "paper:cub200"])
def test_the_true_front_is_the_brute_force_front(tiny, text):
    landscape = load_landscape(text, tiny)
    points = {}
    for genome in every_genome(tiny):
        cost = count_cost(genome, num_classes=landscape.num_classes)
        points[str(genome)] = (-landscape.truth(genome), float(cost.macs), float(cost.params))
    expected = set(nondominated(points))
    front = true_front(landscape, tiny)
    assert front.exact and front.epsilon is None
    assert set(map(str, front.genomes)) == expected
    for genome, (truth, macs, params) in zip(front.genomes, front.points):
        assert points[str(genome)] == pytest.approx((-truth, macs, params))
    assert 0 < front.hypervolume <= 1.1 ** 3


def test_a_search_is_scored_by_the_truth(tiny):
    result = simulate_search(tiny, "additive,sigma=0.5", 40, seed=1, repeats=3)
    front = true_front(result.landscape, tiny)
    scored = score(result, front)
    assert 0 < scored.hv_share <= 1 + 1e-9
    assert 0 <= scored.front_share <= 1
    assert scored.judged == len(result.front.stats) and scored.repeats == result.policy.tally.repeats
    assert scored.planted_found is None  # additive plants nothing


def test_with_no_noise_no_call_is_false(tiny):
    result = simulate_search(tiny, "additive,sigma=0", 40, seed=1, repeats=3)
    scored = score(result, true_front(result.landscape, tiny))
    assert 0 < scored.hv_share <= 1 + 1e-9
    assert scored.false_call_rate == 0  # with no noise, every call is true


def test_a_false_call_is_counted_on_a_flat_landscape(tiny):
    """On null every call is false; the share is per genome judged."""
    result = simulate_search(tiny, "null,sigma=3", 60, seed=0, repeats=3)
    scored = score(result, true_front(result.landscape, tiny))
    called = sum(bool(result.front.dominators(s)) for s in result.front.stats)
    assert scored.false_calls == called
    assert scored.false_call_rate == pytest.approx(called / len(result.front.stats))


@pytest.mark.parametrize("argv, message", [
    (["--budget", "0", "--sigma", "1", "--between", "1"], "--budget must be at least 1"),
    (["--budget", "500", "--sampler", "gp", "--sigma", "1", "--between", "1"], "--sampler gp takes a budget of at most 200"),
    (["--sigma", "1"], "give --sigma and --between"),
    (["--sigma", "nan", "--between", "1"], "--sigma must be a finite number"),
    (["--sigma", "1", "--between", "1", "--replicates", "0"], "--replicates must be at least 1"),
    (["--calibration", "/nonexistent/folder"], "cannot read a calibration"),
    (["--sigma", "1", "--between", "1", "--space", "/nonexistent.toml"], ""),
    (["--sigma", "1", "--between", "1", "--sampler", "annealing"], "invalid choice"),
])
def test_the_planner_command_refuses_bad_input_in_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and message in err


def test_the_planner_reads_a_calibration(tmp_path, capsys):
    (tmp_path / "calibration.json").write_text('{"reference": {"fidelity": "proxy", "sigma": null, '
                                               '"between_genome": null}, "candidates": [], "recommended": null}')
    with pytest.raises(SystemExit):
        main(["--calibration", str(tmp_path), "--budget", "5"])
    assert "no measured σ" in capsys.readouterr().err


def test_a_small_plan_gives_sane_intervals(tiny):
    answer = plan(tiny, 30, 0.5, 1.0, replicates=4, processes=1, ladder=(10, 30, 400))
    assert [r.seed for r in answer.replicates] == [0, 1, 2, 3]
    for estimate in (answer.front_share, answer.hv_share, answer.false_call_rate, answer.power):
        assert 0 <= estimate.low <= estimate.value <= estimate.high <= 1 + 1e-9
    assert set(answer.resolved_share) == {10, 30}  # the rung above the budget is not run without beyond=True
    assert answer.resolved_at in (None, 10, 30)
    assert all(r.planted_called is not None for r in answer.replicates)
    assert "\n" not in answer.summary() and "front found" in answer.summary()
    assert not math.isnan(answer.front_share.value)
