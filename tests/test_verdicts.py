"""Verdicts under simulated nulls and alternatives, no training: a study with the structure of
a real one (the 30 mv2 paper configurations on 3 seeds, 126 random genomes, 26 of them on 3
seeds, the rest on 1, their real MACs and params) whose top-1s are drawn from known true means
with seed noise σ = 5 pp. What the front says must hold when nothing differs."""

import dataclasses
import math
import statistics

import numpy as np
import pytest

from ulsam_nas import count_cost
from ulsam_nas.analysis.front import Front, GenomeStats, between_genome, dominates_by_mean, seed_noise
from ulsam_nas.analysis.objectives import Selection
from ulsam_nas.models.spaces import load_space, random_genomes

SIGMA = 5.0
TRUE_TOP1 = 50.0
SELECTION = Selection.parse("top1,macs,params")


class NullStudy:
    """The genomes, labels, seed counts and costs of the simulated study; ``draw`` makes its top-1s."""

    def __init__(self) -> None:
        space = load_space("mv2")
        paper = space.paper_genomes()
        randoms = random_genomes(space, 126, seed=0, exclude={g for g, _ in paper})
        self.genomes = [str(g) for g, _ in paper] + [str(g) for g in randoms]
        self.labels = [label for _, label in paper] + [""] * len(randoms)
        self.seeds = [3] * (len(paper) + 26) + [1] * 100
        self.costs = [tuple(float(v) for v in (c.macs, c.params))
                      for c in (count_cost(g, num_classes=10) for g in [g for g, _ in paper] + randoms)]
        self.paper = len(paper)

    def draw(self, rng: np.random.Generator, true_means: list[float] | None = None) -> list[GenomeStats]:
        means = true_means or [TRUE_TOP1] * len(self.genomes)
        return [GenomeStats(genome, tuple(range(n)), tuple(float(x) for x in mean + rng.normal(0, SIGMA, n)), costs,
                            trial=i, label=label)
                for i, (genome, label, n, costs, mean) in enumerate(zip(self.genomes, self.labels, self.seeds, self.costs, means))]

    def rival_on_three_seeds(self, index: int) -> int:
        """A genome on 3 seeds that costs no more than genome ``index``."""
        stats = self.draw(np.random.default_rng(0))
        front = Front.of(stats, SELECTION)
        rivals = {s.genome for s in front.rivals(stats[index].genome) if s.n == 3}
        return next(i for i, g in enumerate(self.genomes) if g in rivals)


@pytest.fixture(scope="module")
def null_study() -> NullStudy:
    return NullStudy()


def test_the_simulated_study_has_the_structure_of_a_real_one(null_study):
    assert null_study.paper == 30 and len(null_study.genomes) == 156 == len(set(null_study.genomes))
    assert null_study.seeds.count(3) == 56 and null_study.seeds.count(1) == 100


def test_the_fronts_verdicts_are_the_rule_applied_one_pair_at_a_time(null_study):
    """The front answers a report's verdicts from its dominance matrices (a 5,000-trial study has
    thousands of genomes); a genome's statistics from elsewhere are compared rival by rival. Both agree."""
    stats = null_study.draw(np.random.default_rng(3), [TRUE_TOP1 + 2 * (i % 5) for i in range(len(null_study.genomes))])
    front = Front.of(stats, SELECTION)
    kinds = set()
    for j, b in enumerate(stats):
        assert [bool(front.by_mean[i, j]) for i in range(len(stats))] == [dominates_by_mean(a, b, SELECTION) for a in stats]
        from_matrices, one_by_one = front.verdict(b), front.verdict(dataclasses.replace(b, trial=-1))
        assert (from_matrices.kind, from_matrices.other, from_matrices.difference, from_matrices.bound) == \
            (one_by_one.kind, one_by_one.other, one_by_one.difference, one_by_one.bound)
        kinds.add(from_matrices.kind)
    assert kinds == {"front", "within-noise", "dominated"}


def test_under_the_null_at_most_five_percent_of_paper_configurations_are_called_dominated(null_study):
    # The rule this replaced (Welch with each genome's own std, z = 1.96) called 15.5 of 30 on average here.
    rng = np.random.default_rng(19)
    replicates, called = 100, []
    for _ in range(replicates):
        stats = null_study.draw(rng)
        front = Front.of(stats, SELECTION)
        called.append(sum(front.verdict(s).kind == "dominated" for s in stats[:null_study.paper]))
    share = sum(called) / (replicates * null_study.paper)
    assert share <= 0.05, f"{share:.1%} of paper configurations called dominated under the null"


def test_a_paper_configuration_three_sigma_worse_than_one_rival_is_found(null_study):
    # The worst case for power: the paper configuration with the most rivals (the bound grows with them).
    rng = np.random.default_rng(20)
    stats = null_study.draw(rng)
    front = Front.of(stats, SELECTION)
    worst = max(range(null_study.paper), key=lambda i: len(front.rivals(stats[i].genome)))
    better = null_study.rival_on_three_seeds(worst)
    true_means = [TRUE_TOP1] * len(null_study.genomes)
    true_means[better] = TRUE_TOP1 + 3 * SIGMA
    replicates, found = 100, 0
    for _ in range(replicates):
        stats = null_study.draw(rng, true_means)
        verdict = Front.of(stats, SELECTION).verdict(stats[worst])
        found += verdict.kind == "dominated"
    assert found / replicates >= 0.5, f"power {found / replicates:.0%} with {len(front.rivals(stats[worst].genome))} rivals"


def test_the_between_genome_std_and_its_interval_cover_the_truth(null_study):
    rng = np.random.default_rng(21)
    for true_std in (0.0, 3.0):
        covered, estimates = 0, []
        for _ in range(200):
            true_means = list(TRUE_TOP1 + rng.normal(0, true_std, len(null_study.genomes)))
            stats = null_study.draw(rng, true_means)
            signal = between_genome(stats, seed_noise(stats))
            covered += signal.low <= true_std <= signal.high
            estimates.append(signal.std)
        assert covered / 200 >= 0.93, (true_std, covered)  # 95% nominal
        # Near 0 the estimate, cut at 0, sits a little above the truth (0.7 pp here); away from it, on it.
        assert statistics.mean(estimates) == pytest.approx(true_std, abs=1.0 if true_std == 0 else 0.3)


def test_with_nothing_to_tell_apart_the_summary_says_so(null_study):
    stats = null_study.draw(np.random.default_rng(22))
    front = Front.of(stats, SELECTION)
    assert front.signal.low == 0 and not front.signal.resolved
    sentence = front.signal.verdict(front.noise)
    assert sentence.startswith("at this fidelity the placements are not told apart (between-genome std ")
    assert f"seed σ {front.noise.sigma:.1f} pp" in sentence and sentence.endswith("the front rests on the costs")


def test_shrinkage_lifts_the_winners_curse(null_study):
    # Under the null the best raw mean of 156 noisy genomes sits far above the truth; the shrunk one does not.
    rng = np.random.default_rng(23)
    raw_excess, shrunk_excess = [], []
    for _ in range(30):
        front = Front.of(null_study.draw(rng), SELECTION)
        best = front.members[0]
        raw_excess.append(max(s.mean for s in front.stats) - TRUE_TOP1)
        shrunk_excess.append(front.estimate(best) - TRUE_TOP1)
    assert statistics.mean(raw_excess) > 2 * SIGMA
    assert abs(statistics.mean(shrunk_excess)) < SIGMA / 3


def test_well_separated_genomes_are_told_apart_and_shrink_little(null_study):
    rng = np.random.default_rng(24)
    true_means = list(TRUE_TOP1 + rng.normal(0, 4 * SIGMA, len(null_study.genomes)))
    front = Front.of(null_study.draw(rng, true_means), SELECTION)
    assert front.signal.resolved and front.signal.low > SIGMA
    assert "the placements differ beyond seed noise" in front.signal.verdict(front.noise)
    three_seeds = [s for s in front.stats if s.n == 3]
    assert max(abs(front.estimate(s) - s.mean) for s in three_seeds) < 0.5 * SIGMA / math.sqrt(3)
