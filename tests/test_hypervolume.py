
import numpy as np
import optuna
import pytest

from ulsam_nas.analysis.hypervolume import hypervolume

from .complexity import growth


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


def sphere_front(count: int, dimension: int) -> list[list[float]]:
    """``count`` points on a sphere's octant: mutually non-dominated, every one adds volume."""
    directions = np.abs(np.random.default_rng(0).normal(size=(count, dimension)))
    return (1.0 - directions / np.linalg.norm(directions, axis=1, keepdims=True)).tolist()


@pytest.mark.parametrize("dimension, count, bound", [
    (3, 1000, 4.0),  # the 3-D sweep, O(n log n): 2.0-2.2x measured; a quadratic class would take 4x
    (4, 100, 16.0),  # slabs of 3-D sweeps, O(n² log n): 3.6-3.8x measured; inclusion-exclusion would explode
])
def test_doubling_a_front_where_every_point_counts_grows_the_time_by_its_class(dimension, count, bound):
    small, large = sphere_front(count, dimension), sphere_front(2 * count, dimension)
    reference = [1.1] * dimension
    ratio = growth(lambda: hypervolume(small, reference), lambda: hypervolume(large, reference), repeats=5)
    assert ratio < bound, f"{2 * count} points took {ratio:.1f}x the time of {count}"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("dimension", [3, 4])
def test_ties_on_a_grid_match_optuna(dimension):
    # Integer coordinates: equal x, y and z values and exact duplicates, where a sweep's ties matter.
    points = np.random.default_rng(dimension).integers(0, 4, size=(60, dimension)).astype(float)
    reference = [4.0] * dimension
    study = optuna.create_study(directions=["minimize"] * dimension)
    for values in points:
        study.add_trial(optuna.trial.create_trial(values=values.tolist(), distributions={}, params={}))
    optuna_value = optuna.visualization.plot_hypervolume_history(study, reference).data[0].y[-1]
    assert hypervolume(points.tolist(), reference) == pytest.approx(optuna_value, rel=1e-12)
