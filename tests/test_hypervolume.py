import time

import numpy as np
import optuna
import pytest

from ulsam_nas.hypervolume import hypervolume


def random_points(dimension: int, seed: int) -> np.ndarray:
    """A mutually non-dominated front, points it dominates, duplicates, and points beyond the reference (1, ..., 1)."""
    rng = np.random.default_rng(seed)
    directions = np.abs(rng.normal(size=(40, dimension)))
    front = 1.0 - 0.9 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    dominated = front[:15] + rng.uniform(0.0, 0.05, size=(15, dimension))
    duplicates = front[rng.integers(0, len(front), size=10)]
    uniform = rng.uniform(0.0, 1.2, size=(30, dimension))
    points = np.concatenate([front, dominated, duplicates, uniform])
    return points[rng.permutation(len(points))]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("dimension", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_optuna_hypervolume_history(dimension, seed):
    points = random_points(dimension, seed)
    reference = [1.0] * dimension
    study = optuna.create_study(directions=["minimize"] * dimension)
    for values in points:
        study.add_trial(optuna.trial.create_trial(values=values.tolist(), distributions={}, params={}))

    figure = optuna.visualization.plot_hypervolume_history(study, reference)
    optuna_value = figure.data[0].y[-1]

    assert optuna_value > 0.0
    assert hypervolume(points.tolist(), reference) == pytest.approx(optuna_value, rel=1e-9)


@pytest.mark.parametrize(
    "point, reference",
    [([0.25], [1.0]), ([1.0, 2.0], [3.0, 5.0]), ([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]), ([1.0] * 4, [2.0, 3.0, 4.0, 5.0])],
)
def test_one_point_is_its_box(point, reference):
    assert hypervolume([point], reference) == pytest.approx(np.prod(np.subtract(reference, point)))


def test_two_points_in_2d_and_3d():
    # Boxes of 3 and 4 overlapping in [2, 4] x [3, 4].
    assert hypervolume([(1.0, 3.0), (2.0, 2.0)], (4.0, 4.0)) == pytest.approx(5.0)
    # Boxes of 4 and 2 overlapping in the unit cube [1, 2]^3.
    assert hypervolume([(0.0, 0.0, 1.0), (1.0, 1.0, 0.0)], (2.0, 2.0, 2.0)) == pytest.approx(5.0)


def test_one_dimension_is_the_best_distance():
    assert hypervolume([[0.5], [0.2], [0.9]], [1.0]) == pytest.approx(0.8)


def test_dominated_duplicate_and_outside_points_add_nothing():
    front = [(1.0, 3.0), (2.0, 2.0)]
    extra = [(1.0, 3.0), (2.5, 2.5), (0.5, 4.0), (3.0, 5.0), (4.0, 0.0)]
    assert hypervolume(front + extra, (4.0, 4.0)) == pytest.approx(hypervolume(front, (4.0, 4.0)))


def test_empty_is_zero():
    assert hypervolume([], [1.0, 1.0]) == 0.0
    assert hypervolume([(1.0, 0.0)], [1.0, 1.0]) == 0.0


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError):
        hypervolume([(0.0, 0.0, 0.0)], [1.0, 1.0])


@pytest.mark.parametrize("count, dimension, budget_s", [(300, 3, 0.5), (100, 4, 1.0)])
def test_fast_on_fronts_where_every_point_counts(count, dimension, budget_s):
    rng = np.random.default_rng(0)
    directions = np.abs(rng.normal(size=(count, dimension)))
    front = 1.0 - directions / np.linalg.norm(directions, axis=1, keepdims=True)
    start = time.perf_counter()
    hypervolume(front.tolist(), [1.1] * dimension)
    assert time.perf_counter() - start < budget_s
