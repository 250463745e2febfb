"""What a search prints at its end fits a screen: on a study of the demo's size (200 trainings,
placements not told apart, a front of well over ten genomes), from the seed-noise line to the end
at most 60 lines, with the knee, the top of the front, every paper configuration's verdict in one
table, and where the full tables are. The study is made by the simulator (the search policy on a
null landscape at the demo's σ) in Optuna's in-memory storage: the summary reads the study alone, and
200 trainings' bookkeeping in SQLite would cost 30 s; the report is written as the search writes it."""

import optuna
import pandas as pd

from ulsam_nas.models.spaces import load_space
from ulsam_nas.search.result import TOP, print_result
from ulsam_nas.simulate.driver import simulate_search

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_closing_summary_of_a_demo_sized_study_fits_a_screen(tmp_path, capsys):
    space = load_space("mv2")
    url = f"sqlite:///{tmp_path / 'study.db'}"  # where the summary says the study is
    study = simulate_search(space, "null,sigma=5.5", 200, sampler="random", study_name="demo").study
    labels = {t.user_attrs["paper_label"] for t in study.trials if t.user_attrs.get("paper_label")}
    print_result(study, space, url, tmp_path, repeats=3)
    out = capsys.readouterr().out
    summary = out[out.index("seed noise"):].splitlines()
    assert len(summary) <= 60, "\n".join(summary)
    assert any(line.startswith("Knee: ") for line in summary)
    front = pd.read_csv(tmp_path / "report" / "pareto.csv")
    assert len(front) > TOP and f"{len(front) - TOP} more front genomes in pareto.csv" in out
    assert len(labels) == 30 and all(label in out for label in labels)  # every paper verdict, in the table
    assert "full tables:" in out and "genomes.csv" in out

    print_result(study, space, url, tmp_path, repeats=3, full_front=True)
    full = capsys.readouterr().out
    assert all(genome in full for genome in front["genome"])
