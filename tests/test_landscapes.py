"""Landscapes: a trainer whose truth is known. The truth and the seed noise are deterministic in
(landscape, genome, seed), in every process; the built-ins have the between-genome spread, the
planted outliers and the paper fit they claim; a malformed landscape file is one line, exit 2."""

import inspect
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ulsam_nas.data import DataError, DataSpec, load_images
from ulsam_nas.landscapes import LandscapeError, builtin_space, load_landscape
from ulsam_nas.landscapes import trainer as landscape_trainer
from ulsam_nas.models.genome import Genome, Placement
from ulsam_nas.models.spaces import BUILTIN_DIR, load_space, random_genomes
from ulsam_nas.train import loop

from .commands import run_main

EXAMPLE = BUILTIN_DIR / "landscapes" / "example.toml"
GENOMES = ["mv2_w1.0()", "mv2_w1.0(16g1,17g1)", "mv2_w1.0(9g4,13g16,17:1g4)", "mv2_w1.0(1:1g2,16g8,17g8)"]


@pytest.fixture(scope="module")
def mv2():
    return load_space("mv2")


@pytest.fixture(scope="module")
def mv2_genomes(mv2):
    return random_genomes(mv2, 200, seed=7)


def genome(text: str) -> Genome:
    return Genome.from_string(text)


def fresh(text: str, space):
    """``load_landscape`` without its cache: what a new process computes."""
    from ulsam_nas import landscapes

    landscapes._builtin.cache_clear()
    landscapes._from_file.cache_clear()
    return load_landscape(text, space)


def test_values_are_deterministic_in_landscape_genome_and_seed(mv2):
    text = "additive,sigma=2,seed=3"
    first = load_landscape(text, mv2)
    again = fresh(text, mv2)
    assert again == first and again is not first
    for g in map(genome, GENOMES):
        assert again.observe(g, 5) == first.observe(g, 5)
        assert again.curve_at(first.observe(g, 5), 1, 4, g, 5) == first.curve_at(first.observe(g, 5), 1, 4, g, 5)
        assert len({first.observe(g, seed) for seed in range(5)}) == 5
    other = load_landscape("additive,sigma=2,seed=4", mv2)
    assert other.truth(genome(GENOMES[2])) != first.truth(genome(GENOMES[2]))


def test_a_new_process_computes_the_same_values(mv2):
    landscape = load_landscape("additive,sigma=2", mv2)
    program = ("import sys; from ulsam_nas.landscapes import builtin_space, load_landscape; "
               "from ulsam_nas.models.genome import Genome; "
               "landscape = load_landscape('additive,sigma=2', builtin_space('mv2')); "
               "print(repr([landscape.observe(Genome.from_string(g), 3) for g in sys.argv[1:]]))")
    out = subprocess.run([sys.executable, "-c", program, *GENOMES], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert eval(out) == [landscape.observe(genome(g), 3) for g in GENOMES]


def test_the_driver_on_any_space_and_the_worker_get_one_landscape(tmp_path):
    custom = tmp_path / "deep.toml"
    custom.write_text('name = "deep"\nbackbone = "mv2"\nwidth_mults = [1.0]\n\n[layers]\n'
                      '16 = { actions = ["keep", "substitute"], groups = [1, 8] }\n')
    for text in ("additive,between=2", "outliers,drop=4", "paper:cub200", "null", str(EXAMPLE)):
        driver = fresh(text, load_space(custom))
        worker = fresh(text, builtin_space("mv2"))
        assert driver == worker and driver.fingerprint == worker.fingerprint, text


def test_with_no_noise_a_training_reports_the_truth(mv2):
    landscape = load_landscape("additive,sigma=0,between=3", mv2)
    for g in map(genome, GENOMES):
        truth = landscape.truth(g)
        assert landscape.observe(g, 0) == landscape.observe(g, 9) == truth
        reports: list[tuple[int, dict]] = []
        result = landscape_trainer.train(g, "landscape:additive,sigma=0,between=3", "smoke:epochs=4", seed=2,
                                         report=lambda epoch, metrics, reports=reports: reports.append((epoch, metrics)))
        assert [epoch for epoch, _ in reports] == [1, 2, 3, 4]
        top1s = [metrics["top1"] for _, metrics in reports]
        assert top1s[-1] == result.top1 == truth and top1s == sorted(top1s) and top1s[0] < truth
        seconds = [metrics["seconds"] for _, metrics in reports]
        assert seconds == sorted(seconds) and result.seconds == seconds[-1] > 0
        assert set(reports[0][1]) == {"top1", "top5", "loss", "epoch", "seconds", "images_per_second"}
        assert (result.split, result.epochs, result.model) == ("test", 4, None)


def test_the_trainer_has_the_signature_of_the_real_one():
    assert inspect.signature(landscape_trainer.train).parameters.keys() == inspect.signature(loop.train).parameters.keys()
    assert [p.default for p in inspect.signature(landscape_trainer.train).parameters.values()] == \
        [p.default for p in inspect.signature(loop.train).parameters.values()]


def test_seconds_come_from_the_genomes_cost():
    """The seconds a landscape reports are computed from MACs (nothing is timed): fewer MACs, fewer seconds."""
    cheap, dear = genome("mv2_w1.0(13g4,14g4,16g4,17g4)"), genome("mv2_w1.0()")
    reported = {g: landscape_trainer.train(g, "landscape:null", "smoke", evaluate_on="val").seconds for g in (cheap, dear)}
    assert reported[cheap] < reported[dear]


def test_noise_differs_by_seed_and_early_epochs_rank_like_the_last(mv2, mv2_genomes):
    landscape = load_landscape("additive,sigma=1,between=3", mv2)
    finals = np.array([landscape.observe(g, 0) for g in mv2_genomes])
    firsts = np.array([landscape.curve_at(f, 1, 4, g, 0) for f, g in zip(finals, mv2_genomes)])
    assert np.corrcoef(finals, firsts)[0, 1] > 0.9
    noise = np.array([landscape.observe(g, 1) - landscape.truth(g) for g in mv2_genomes])
    assert 0.8 < noise.std() < 1.2 and abs(noise.mean()) < 0.25


def test_additive_spreads_genomes_by_its_between_std(mv2, mv2_genomes):
    for between in (0.5, 2.0):
        landscape = load_landscape(f"additive,between={between}", mv2)
        assert landscape.between_std(mv2) == pytest.approx(between, rel=1e-9)
        truths = [landscape.truth(g) for g in mv2_genomes]
        assert np.std(truths) == pytest.approx(between, rel=0.15)


def test_the_between_std_is_exact(tmp_path):
    """Against every genome of a small space with two widths, weighted by how often a random draw picks it."""
    path = tmp_path / "small.toml"
    path.write_text('backbone = "mv2"\nwidth_mults = [1.0, 0.5]\n\n[layers]\n'
                    '16 = { actions = ["keep", "insert", "substitute"], groups = [1, 8] }\n'
                    '17 = { actions = ["keep", "substitute"], groups = [4] }\n')
    space = load_space(path)
    landscape = load_landscape(str(write_landscape(tmp_path, """
        [[effect]]
        layer = 16
        action = "substitute"
        g = 1
        top1 = -2.0
        [[effect]]
        layer = 17
        action = "substitute"
        g = 4
        top1 = 1.5
        [[effect]]
        layer = 16
        action = "insert"
        g = 8
        top1 = 0.5
        [[interaction]]
        a = "16g1"
        b = "17g4"
        top1 = -3.0
        [[width]]
        width_mult = 0.5
        top1 = -4.0
    """)), space)
    options = {16: [None] * 2 + [Placement(16, a, g) for a in ("insert", "substitute") for g in (1, 8)],
               17: [None] + [Placement(17, "substitute", 4)]}  # keep weighs as much as one action
    values = [landscape.truth(Genome("mv2", tuple(p for p in (a, b) if p), width))
              for width in (1.0, 0.5) for a in options[16] for b in options[17]]
    assert landscape.between_std(space) == pytest.approx(float(np.std(values)), rel=1e-12)


def test_null_gives_every_genome_the_same_truth(mv2, mv2_genomes):
    landscape = load_landscape("null,base=55", mv2)
    assert {landscape.truth(g) for g in mv2_genomes} == {55.0}
    assert landscape.between_std(mv2) == 0.0


def test_outliers_plant_far_worse_placements(mv2, mv2_genomes):
    landscape = load_landscape("outliers,drop=8", mv2)
    assert landscape.planted == (Placement(16, "substitute", 1), Placement(17, "substitute", 1))
    assert landscape.truth(genome("mv2_w1.0(16g1,17g1)")) == landscape.base - 16
    assert landscape.truth(genome("mv2_w1.0(13g1,16g1)")) == landscape.base - 8
    for g in mv2_genomes:
        assert landscape.truth(g) == landscape.base - 8 * len(set(g.placements) & set(landscape.planted))
    assert load_landscape("outliers", load_space("mv1")).planted == (Placement(11, "substitute", 1),
                                                                     Placement(12, "substitute", 1))


def test_paper_cub200_is_fitted_to_the_papers_rows_with_its_residual_stated(mv2):
    landscape = load_landscape("paper:cub200", mv2)
    rows = [(config.genome(r.groups or 1), r.top1) for config in mv2.paper for r in config.results
            if r.dataset == "cub200"]
    vanilla = next(top1 for g, top1 in rows if not g.placements)
    misses = np.array([landscape.truth(g) - top1 for g, top1 in rows if g.placements])
    assert landscape.base == vanilla == 62.94 and landscape.num_classes == 200
    assert landscape.residual == pytest.approx(float(np.sqrt(np.mean(misses ** 2))), rel=1e-9)
    assert landscape.residual < 0.7 * float(np.sqrt(np.mean([(top1 - vanilla) ** 2 for g, top1 in rows if g.placements])))
    assert f"fit residual {landscape.residual:.2f} pp" in landscape.describe(mv2)
    shrunk = load_landscape("paper:cub200,lambda=100", mv2)
    assert max(map(abs, shrunk.effects.values())) < max(map(abs, landscape.effects.values()))


def write_landscape(folder: Path, body: str, head: str = 'backbone = "mv2"\nsigma = 1.0\nbase = 60.0\n') -> Path:
    path = folder / "belief.toml"
    path.write_text(head + "\n".join(line.strip() for line in body.strip().splitlines()) + "\n")
    return path


def test_an_interaction_adds_exactly_when_both_placements_are_there(mv2):
    landscape = load_landscape(str(EXAMPLE), mv2)
    both, first, second = genome("mv2_w1.0(16g1,17g1)"), genome("mv2_w1.0(16g1)"), genome("mv2_w1.0(17g1)")
    vanilla = landscape.truth(genome("mv2_w1.0()"))
    assert vanilla == landscape.base == 62.94
    assert landscape.truth(both) - landscape.truth(first) - landscape.truth(second) + vanilla == pytest.approx(-3.0, abs=1e-12)
    assert landscape.truth(genome("mv2_w1.0(16g1,17g8)")) == pytest.approx(vanilla - 2.0 + 0.8, abs=1e-12)
    assert landscape.num_classes == 200 and landscape.name == "example"


def test_a_linear_curve_without_noise_rises_in_equal_steps_to_the_truth(tmp_path, mv2):
    path = write_landscape(tmp_path, '[curve]\nshape = "linear"\nstart = 0.0', head='backbone = "mv2"\nsigma = 0\nbase = 50.0\n')
    landscape, vanilla = load_landscape(str(path), mv2), genome("mv2_w1.0()")
    assert [landscape.curve_at(50.0, epoch, 4, vanilla, 0) for epoch in range(1, 5)] == [12.5, 25.0, 37.5, 50.0]


MALFORMED = [
    ("colour = 1", "belief.toml: colour: unknown key"),
    ('[curve]\nshape = "cubic"', "curve.shape: expected one of exponential, linear"),
    ("[curve]\nrate = 0", "curve.rate: expected a number > 0"),
    ("[curve]\nspeed = 1", "curve.speed: unknown key"),
    ('[[effect]]\nlayer = 30\naction = "insert"\ng = 1\ntop1 = 1', "effect[0]: "),
    ('[[effect]]\nlayer = 2\naction = "substitute"\ng = 1\ntop1 = 1', "effect[0]: mv2 layer 2: cannot be substituted"),
    ('[[effect]]\nlayer = 3\naction = "insert"\ng = 16\ntop1 = 1', "effect[0]: mv2 layer 3: g=16 does not divide"),
    ('[[effect]]\nlayer = 16\naction = "swap"\ng = 1\ntop1 = 1', "effect[0].action: expected 'insert' or 'substitute'"),
    ('[[effect]]\nlayer = 16\naction = "insert"\ng = 1\ntop1 = nan', "effect[0].top1: expected a finite number"),
    ('[[effect]]\nlayer = 16\naction = "insert"\ng = "1"\ntop1 = 1', "effect[0].g: expected int, got str '1'"),
    ('[[effect]]\nlayer = 16\naction = "insert"\ng = 1\ntop1 = 1\nwhy = "x"', "effect[0].why: unknown key"),
    ('[[interaction]]\na = "16"\nb = "17g1"\ntop1 = 1', "interaction[0].a: mv2 layer 16: no group count g"),
    ('[[interaction]]\na = "16g1"\nb = "16:1g1"\ntop1 = 1', "interaction[0]: 16g1 and 16:1g1 are on one layer"),
    ("[[width]]\nwidth_mult = 0\ntop1 = 1", "width[0].width_mult: expected a number in (0, 4]"),
    ("sigma = = 1", "belief.toml: not valid TOML"),
]


@pytest.mark.parametrize("body, message", MALFORMED)
def test_a_malformed_landscape_file_is_one_line_naming_file_and_key(tmp_path, mv2, body, message):
    path = write_landscape(tmp_path, body)
    with pytest.raises(LandscapeError) as error:
        load_landscape(str(path), mv2)
    assert message in str(error.value) and str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize("head, message", [
    ('backbone = "mv2"\nsigma = -1.0\nbase = 60.0\n', "sigma: the seed noise's std must be >= 0, got -1.0"),
    ('backbone = "mv2"\nsigma = "one"\nbase = 60.0\n', "sigma: expected a number, got str 'one'"),
    ('backbone = "mv2"\nsigma = 1.0\nbase = inf\n', "base: expected a finite number, got inf"),
    ('backbone = "mv2"\nsigma = true\nbase = 60.0\n', "sigma: expected a number, got bool True"),
    ('sigma = 1.0\nbase = 60.0\n', "backbone: missing"),
    ('backbone = "resnet"\nsigma = 1.0\nbase = 60.0\n', "backbone: "),
])
def test_a_malformed_landscape_head_is_refused(tmp_path, mv2, head, message):
    with pytest.raises(LandscapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_landscape(str(write_landscape(tmp_path, "", head=head)), mv2)


@pytest.mark.parametrize("text, message", [
    ("ridge", "unknown landscape 'ridge'"),
    ("paper", "unknown landscape 'paper'"),
    ("paper:mnist", "no vanilla mv2 1.0 top-1 on 'mnist'; datasets: cub200, dogs, food101, imagenet"),
    ("additive,sigma=-1", "sigma must be a number >= 0, got '-1'"),
    ("additive,between=nan", "between must be a number >= 0, got 'nan'"),
    ("additive,seed=1.5", "seed must be an integer >= 0"),
    ("null,between=2", "'between=2' is not KEY=VALUE with a key of null: sigma, base"),
    ("outliers,drop=1,drop=2", "drop is given twice"),
    ("missing/landscape.toml", "cannot read the landscape file"),
])
def test_a_bad_builtin_or_path_is_refused(mv2, text, message):
    with pytest.raises(LandscapeError) as error:
        load_landscape(text, mv2)
    assert message in str(error.value)


def test_a_landscape_for_another_backbone_is_refused(tmp_path, mv2):
    path = write_landscape(tmp_path, "", head='backbone = "mv1"\nsigma = 1.0\nbase = 60.0\n')
    with pytest.raises(LandscapeError, match="it is for backbone mv1, space mv2 for mv2"):
        load_landscape(str(path), mv2)


def test_a_landscape_data_spec_keeps_its_text_and_has_no_images(tmp_path, monkeypatch):
    assert str(DataSpec.parse("landscape:paper:cub200,sigma=0.5")) == "landscape:paper:cub200,sigma=0.5"
    monkeypatch.chdir(tmp_path)
    assert DataSpec.parse("landscape:beliefs/mine.toml").root == tmp_path / "beliefs" / "mine.toml"
    with pytest.raises(DataError, match="a landscape needs its name or file"):
        DataSpec.parse("landscape:")
    with pytest.raises(DataError, match="a landscape has no images"):
        load_images("landscape:null", "train", 32)
    with pytest.raises(DataError, match="trains on landscape:TEXT, not on synthetic"):
        landscape_trainer.train(genome("mv2_w1.0()"))


@pytest.mark.parametrize("body", ["colour = 1", 'sigma = "x"'])
def test_the_search_refuses_a_malformed_landscape_file_before_anything_starts(tmp_path, monkeypatch, body):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text('backbone = "mv2"\nbase = 60.0\n' + ("sigma = 1.0\n" if "sigma" not in body else "") + body + "\n")
    result = run_main("ulsam_nas.search", "--dataset", f"landscape:{path.name}", "--budget", "2")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path.resolve()}: "), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_example_landscape_loads_and_describes_itself(mv2):
    line = load_landscape(str(EXAMPLE), mv2).describe(mv2)
    assert line.startswith("landscape example (mv2): seed noise σ = 1.00 pp, between-genome std ")
    assert all(math.isfinite(load_landscape(text, mv2).between_std(mv2))
               for text in ("null", "additive", "outliers", "paper:food101", "paper:dogs"))


def test_every_paper_dataset_fits_on_both_backbones():
    for backbone, dataset in itertools.product(("mv1", "mv2"), ("food101", "cub200", "dogs")):
        landscape = load_landscape(f"paper:{dataset}", builtin_space(backbone))
        assert landscape.residual is not None and landscape.effects, (backbone, dataset)
