"""A received study's attributes and values are data: each crafted row of the security review
(issue 29's table) as a real SQLite study folder, edited with Optuna's API or in SQL, run through
the real ``report`` and ``export`` commands. Every one is refused in one line naming what is wrong,
exit status 2, with no traceback and nothing written (no report folder, no export folder), and no
crafted size is allocated. The bounded hypervolume (at most four objectives, an estimate past 400
front points in four) is tested here too."""

import json
import shutil
import sqlite3

import numpy as np
import optuna
import pytest
import torch

from ulsam_nas.analysis.hypervolume import EXACT_POINTS, _volume, hypervolume, is_estimated, monte_carlo
from ulsam_nas.analysis.objectives import MAX_OBJECTIVES, Selection
from ulsam_nas.report.history import VOLUMES_4D, Reference, hypervolume_history
from ulsam_nas.study_schema import check_study

from .commands import run_main
from .conftest import add
from .test_security_folders import pristine, refused  # noqa: F401 - pristine: the received study, a fixture

optuna.logging.set_verbosity(optuna.logging.WARNING)

EIGHT_OBJECTIVES = [{"name": f"o{i}", "direction": "maximize" if i == 0 else "minimize", "label": f"o{i}", "unit": "",
                     "scale": 1.0, "digits": 2, "metric": "top1" if i == 0 else None, "tolerance": 0.01,
                     "ideal": 100.0 if i == 0 else 0.0, "reference": 0.0 if i == 0 else 1.0} for i in range(8)]


def crafted_trial(values, **attrs):
    return optuna.trial.create_trial(values=values, user_attrs={"genome": "mv2_w1.0(17g4)", "seed": 0, **attrs})


def set_null_value(study, folder):
    connection = sqlite3.connect(folder / "study.db")
    with connection:
        connection.execute("UPDATE trial_values SET value = NULL WHERE trial_value_id = 1")
    connection.close()


# (case, edit of the study, what the one line names)
CRAFTED = [
    ("final_test text", lambda s, f: s.set_user_attr("final_test", "abc"), "the study's final_test"),
    ("oneshot without its record", lambda s, f: s.set_user_attr("oneshot", {"x": 1}), "the study's oneshot"),
    ("driver_starts text", lambda s, f: s.set_user_attr("driver_starts", "abc"), "the study's driver_starts"),
    ("num_classes 1e12", lambda s, f: s.set_user_attr("num_classes", 1e12), "the study's num_classes"),
    ("eight objectives", lambda s, f: s.set_user_attr("objective_specs", EIGHT_OBJECTIVES),
     f"8 objectives; the product reads at most {MAX_OBJECTIVES}"),
    ("seed [1]", lambda s, f: add(s, "mv2_w1.0(17g4)", 40.0, seed=[1]), "trial 5's seed"),
    ("genome 123", lambda s, f: s.add_trial(crafted_trial([40.0, 1e6, 1e6], genome=123)), "trial 5's genome"),
    ("paper_label list", lambda s, f: add(s, "mv2_w1.0(17g4)", 40.0, seed=0, paper_label=["x"]), "trial 5's paper_label"),
    ("top-1 inf", lambda s, f: s.add_trial(crafted_trial([float("inf"), 1e6, 1e6])), "trial 5's top1 value"),
    ("top-1 1e308", lambda s, f: s.add_trial(crafted_trial([1e308, 1e6, 1e6])), "trial 5's top1 value"),
    ("cost -inf", lambda s, f: s.add_trial(crafted_trial([40.0, float("-inf"), 1e6])), "trial 5's macs value"),
    ("value NULL in SQL", set_null_value, "a stored value is missing or not a number"),
    ("genome mv2_w64.0()", lambda s, f: add(s, "mv2_w64.0()", 99.0, seed=0), "width 64 is not one of the space's"),
    ("study.json 100,000 deep", lambda s, f: (f / "study.json").write_text("[" * 100_000 + "]" * 100_000),
     "not a study pointer"),
]


@pytest.mark.parametrize("edit, message", [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_a_crafted_attribute_or_value_is_refused_in_one_line_with_nothing_written(pristine, tmp_path, edit, message):
    folder = tmp_path / "received"
    shutil.copytree(pristine, folder)
    edit(optuna.load_study(study_name="received", storage=f"sqlite:///{folder / 'study.db'}"), folder)
    before = sorted(p.name for p in folder.iterdir())
    refused(run_main("ulsam_nas.report", "--study", folder), message)
    refused(run_main("ulsam_nas.export", "--study", folder, "--out", tmp_path / "exported", "--formats", "source"),
            message)
    assert sorted(p.name for p in folder.iterdir()) == before and not (tmp_path / "exported").exists()


def test_the_untouched_study_passes_the_schema(pristine):
    check_study(optuna.load_study(study_name="received", storage=f"sqlite:///{pristine / 'study.db'}"))


@pytest.mark.parametrize("fidelity, num_classes, message", [
    ({"resolution": 1_000_000}, "10", "the architecture's resolution: expected a whole number from 16 to 512"),
    ({}, "1000000000000", "the architecture's num_classes: expected a whole number from 1 to 100000"),
    ({"width_mult": 1e9}, "10", "the weights' fidelity width: expected a number in (0, 4]"),
    ({"resolution": "[[[["}, "10", "the architecture's resolution"),
])
def test_weights_metadata_declaring_a_huge_model_is_refused_before_it_is_built(tmp_path, fidelity, num_classes, message):
    from dataclasses import asdict

    from ulsam_nas.train.fidelity import SMOKE

    path = tmp_path / "crafted.pt"
    metadata = {"fidelity": json.dumps(asdict(SMOKE) | fidelity), "num_classes": num_classes}
    torch.save({"state_dict": {}, "metadata": metadata}, path)
    result = run_main("ulsam_nas.export", "--genome", "(16,17)", "--g", "4", "--space", "mv2", "--weights", path,
                      "--out", tmp_path / "exported", "--formats", "source")
    refused(result, message)
    assert not (tmp_path / "exported").exists()


def sphere(points: int, dimensions: int, seed: int = 0) -> list[tuple[float, ...]]:
    """Mutually nondominated minimisation points in the unit box."""
    x = np.random.default_rng(seed).random((points, dimensions))
    return [tuple(row) for row in 1 - x / np.linalg.norm(x, axis=1, keepdims=True)]


def test_a_large_four_objective_front_is_estimated_within_its_stated_error():
    points = sphere(EXACT_POINTS[4] + 100, 4)
    assert is_estimated(len(points), 4) and not is_estimated(len(points), 3)
    exact = _volume(points, (1.1,) * 4)
    estimate, error = monte_carlo(points, (1.1,) * 4)
    assert hypervolume(points, (1.1,) * 4) == estimate
    assert abs(estimate - exact) < 4 * error and error <= 0.5 / np.sqrt(10_000) * 1.1 ** 4
    assert hypervolume(points[:EXACT_POINTS[4]], (1.1,) * 4) == pytest.approx(_volume(points[:EXACT_POINTS[4]],
                                                                                     (1.1,) * 4), rel=1e-12)


def test_a_four_objective_history_computes_a_bounded_number_of_volumes(monkeypatch):
    """A study of 300 genomes all on a 4-objective front: the history holds a value per trial but
    computes at most ``VOLUMES_4D`` volumes, the last at the last trial, exactly."""
    import ulsam_nas.report.history as history_module
    from ulsam_nas.analysis.objectives import stored_objectives

    specs = [EIGHT_OBJECTIVES[0], *EIGHT_OBJECTIVES[1:4]]
    selection = Selection(stored_objectives(specs))
    reference = Reference(selection, {s["name"]: s["reference"] for s in specs})
    coordinates = sphere(300, 4, seed=1)
    trials = [optuna.trial.create_trial(values=[100 * (1 - c[0]), *c[1:]], user_attrs={"genome": f"g{i}", "seed": 0})
              for i, c in enumerate(coordinates)]
    for number, trial in enumerate(trials):
        trial.number = number
    calls = []
    monkeypatch.setattr(history_module, "hypervolume", lambda points, ones: calls.append(1) or hypervolume(points, ones))
    history = hypervolume_history(trials, reference)
    assert len(history) == 300 and len(calls) <= VOLUMES_4D
    assert history[-1][1] == pytest.approx(hypervolume([reference.normalise(t.values) for t in trials], (1.0,) * 4))
