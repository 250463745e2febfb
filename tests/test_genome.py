import pytest

from ulsam_nas import Genome, Placement


def test_parse_paper_notation():
    genome = Genome.parse("mv1", "(8:1, 9:1, 11)", g=4)
    assert genome.placements == (
        Placement(8, "insert", 4), Placement(9, "insert", 4), Placement(11, "substitute", 4)
    )
    assert str(genome) == "mv1_w1.0(8:1g4,9:1g4,11g4)"
    assert genome.notation() == "(8:1, 9:1, 11)"


@pytest.mark.parametrize("text", [
    "mv1_w1.0(8:1g4,9:1g4,11g4)", "mv2_w1.0()", "mv2_w1.0(16g4,17:1g16)", "mv1_w0.75(4g2,13:1g8)",
    "mv2_w0.5(1:1g1,19:1g16)",
])
def test_canonical_string_round_trips(text):
    genome = Genome.from_string(text)
    assert str(genome) == text
    assert Genome.from_string(str(genome)) == genome


def test_genome_is_immutable_hashable_and_order_independent():
    a = Genome.parse("mv2", "(17, 16)", g=4)
    b = Genome.parse("mv2", "16g4, 17g4")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.width_mult = 0.5


def test_per_item_groups_override_the_default():
    genome = Genome.parse("mv2", "(16g16, 17)", g=4)
    assert [p.groups for p in genome.placements] == [16, 4]


@pytest.mark.parametrize("notation", ["", "()", "vanilla"])
def test_vanilla(notation):
    genome = Genome.parse("mv2", notation)
    assert genome.placements == () and genome.notation() == "vanilla"


@pytest.mark.parametrize("backbone, notation, g, width, message", [
    ("mv1", "15:1", 4, 1.0, r"mv1 layer 15: out of range \(mv1 has layers 1-14\)"),
    ("mv2", "20:1", 4, 1.0, r"mv2 layer 20: out of range \(mv2 has layers 1-19\)"),
    ("mv2", "0", 4, 1.0, r"mv2 layer 0: out of range"),
    ("mv1", "7", 4, 1.0, r"mv1 layer 7: cannot be substituted by ULSAM, it changes the shape \(256 -> 512 channels, stride 2\)"),
    ("mv2", "12", 4, 1.0, r"mv2 layer 12: cannot be substituted .* \(64 -> 96 channels, stride 1\)"),
    ("mv2", "18", 4, 1.0, r"mv2 layer 18: cannot be substituted"),
    ("mv2", "4", 16, 1.0, r"mv2 layer 4: g=16 does not divide its 24 channels at width 1.0"),
    ("mv1", "1:1", 16, 0.75, r"mv1 layer 1: g=16 does not divide its 24 channels at width 0.75"),
    ("mv1", "11", 3, 1.0, r"mv1 layer 11: g=3 does not divide its 512 channels"),
    ("mv1", "8:1, 8", 4, 1.0, r"mv1 layer 8: placed twice"),
    ("mv1", "8:1", None, 1.0, r"mv1 layer 8: no group count g"),
    ("mv1", "8:2", 4, 1.0, r"cannot read placement '8:2'"),
    ("mv3", "8", 4, 1.0, r"unknown backbone 'mv3'"),
])
def test_invalid_placements_name_layer_and_reason(backbone, notation, g, width, message):
    with pytest.raises(ValueError, match=message):
        Genome.parse(backbone, notation, g=g, width_mult=width)


def test_changing_width_revalidates_groups():
    genome = Genome.parse("mv2", "16", g=16)
    with pytest.raises(ValueError, match="layer 16: g=16 does not divide its 40 channels at width 0.25"):
        genome.with_width(0.25)


@pytest.mark.parametrize("text", ["mv2(16g4)", "mv2_w1.0(16)", "mv2_w1.0 16g4", "nonsense"])
def test_malformed_genome_strings(text):
    with pytest.raises(ValueError):
        Genome.from_string(text)
