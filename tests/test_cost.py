import json
import random
import subprocess

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ulsam_nas import Genome, build_model, count_cost
from ulsam_nas.cost.paper import paper_rows

from .commands import run_main, run_module
from .conftest import random_genome


def measured(genome: Genome, num_classes: int, resolution: int, variant: str = "official") -> tuple[int, int]:
    model = build_model(genome, num_classes=num_classes, ulsam_variant=variant).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, resolution, resolution))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return sum(p.numel() for p in model.parameters()), flops // 2


@pytest.mark.parametrize("space_name", ["mv1", "mv2"])
def test_analytic_cost_matches_module_and_flop_counter_for_random_genomes(spaces, space_name):
    rng = random.Random(f"cost-{space_name}")
    space = spaces[space_name]
    for resolution, num_classes in [(224, 1000), (224, 200), (97, 101), (64, 120)]:
        genome = random_genome(space, rng)
        variant = rng.choice(["official", "paper"])
        cost = count_cost(genome, num_classes=num_classes, resolution=resolution, ulsam_variant=variant)
        assert (cost.params, cost.macs) == measured(genome, num_classes, resolution, variant), str(genome)


@pytest.mark.parametrize("backbone, expected_macs", [("mv1", 568_740_352), ("mv2", 300_774_272)])
def test_vanilla_macs(backbone, expected_macs):
    assert count_cost(Genome(backbone)).macs == expected_macs


def test_substituting_mv2_block_17_matches_the_papers_example():
    change = count_cost(Genome.parse("mv2", "17", g=4)) - count_cost(Genome("mv2"))
    # 315,840 conv weights and 15.48M MACs removed; ULSAM adds 2 * 160 * 49 MACs and 2 * 160 weights.
    assert change.weights == -315_840 + 2 * 160
    assert change.macs == -15_476_160 + 2 * 160 * 49


def test_paper_weight_count_reproduces_the_texts_431_6k():
    change = count_cost(Genome.parse("mv2", "(14, 17)", g=4)) - count_cost(Genome("mv2"))
    assert change.weights - 2 * (96 + 160) == -431_616  # "431.6K fewer parameters", ULSAM aside


def test_every_paper_configuration_is_within_rounding(spaces):
    rows = [row for space in spaces.values() for row in paper_rows(space)]
    assert len(rows) == 13
    failing = [(r.config.label, r.weights.difference, r.macs.difference) for r in rows if not r.ok]
    assert not failing


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_module("ulsam_nas.cost", *args)


def test_cli_json():
    result = run_cli("--space", "mv1", "--width", "0.75", "--genome", "(8:1, 9:1, 11)", "--g", "4", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"space", "genome", "params", "macs", "width_mult"}
    expected = count_cost(Genome.parse("mv1", "(8:1, 9:1, 11)", g=4, width_mult=0.75))
    assert data == {"space": "mv1", "genome": "mv1_w0.75(8:1g4,9:1g4,11g4)", "params": expected.params,
                    "macs": expected.macs, "width_mult": 0.75}


def test_cli_paper_report():
    result = run_cli("--paper")
    assert result.returncode == 0, result.stderr
    assert "13 of 13 configurations within the paper's rounding." in result.stdout
    assert "MV2 (13, 14, 16, 17)" in result.stdout and "✗" not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--space", "mv2", "--genome", "(15)", "--g", "4"], "mv2 layer 15: cannot be substituted"),
    (["--space", "mv2", "--genome", "(16)"], "mv2 layer 16: no group count g"),
    (["--space", "nope"], "unknown space 'nope'"),
    (["--space", "mv1", "--genome", "mv2_w1.0(16g4)"], "is for mv2"),
    (["--space", "mv1", "--g"], "expected one argument"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    result = run_main("ulsam_nas.cost", *args) if args != ["--space", "nope"] else run_cli(*args)  # one as a process
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
