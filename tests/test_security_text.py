"""Text from a received study is data wherever it lands: a real SQLite study whose name, paper
labels, genome string and failure text hold markup, code and spreadsheet formulas, through the
real ``report`` and ``export`` commands. report.html, rendered in headless Chromium, runs no
script and shows the text as written; model.py compiles and its docstring holds the label; the
CSV cells a spreadsheet would run carry a leading ``'`` while numbers stay numbers."""

import ast
import importlib.util
import os
import shutil
from html import escape

import optuna
import pandas as pd
import pytest
from optuna_dashboard import get_note

from ulsam_nas.report.publish import publish_front
from ulsam_nas.studies import open_storage, write_pointer

from .commands import in_chromium, needs_chromium, run_main
from .conftest import add

optuna.logging.set_verbosity(optuna.logging.WARNING)

PAYLOAD = "document.body.dataset.pwned=1"  # what a script that ran leaves in the DOM: data-pwned="1"
STUDY_NAME = f"<img src=x onerror={PAYLOAD}>"  # no '/' or '..': a valid study name
IMAGE_LABEL = f'MV2 <img src=x onerror="{PAYLOAD}">'
SCRIPT_LABEL = f"MV2 </script><script>{PAYLOAD}</script>"
CODE_LABEL = 'MV2 """\nimport os\nos.environ["PWNED"] = "1"\n"""\\'
FORMULA_LABEL = '=HYPERLINK("http://x","y")'
SCRIPT_GENOME = f"mv2_w1.0(<script>{PAYLOAD}</script>)"


def rendered_dom(page, profile) -> str:
    """The DOM of ``page`` after headless Chromium has loaded it and run its scripts (plotly.js draws)."""
    return in_chromium(page.as_uri(), profile, "--dump-dom", budget_ms=10000).stdout


@pytest.fixture
def hostile_study(tmp_path):
    """A study folder as the search leaves it, every text in it hostile: (16, 17) g=4 is the best
    mean (what ``export --trial max-top1`` takes), labelled with code that would end a docstring."""
    folder = tmp_path / "received"
    url = f"sqlite:///{folder / 'study.db'}"
    write_pointer(folder, url, STUDY_NAME, "mv2")
    study = optuna.create_study(storage=url, study_name=STUDY_NAME, directions=["maximize", "minimize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["top1", "macs", "params"])
    for key, value in {"space": "mv2", "backbone": "mv2", "dataset": "synthetic", "fidelity": "smoke", "num_classes": 10}.items():
        study.set_user_attr(key, value)
    add(study, "mv2_w1.0()", 36.0, SCRIPT_LABEL, seed=0)
    add(study, "mv2_w1.0()", 35.0, SCRIPT_LABEL, seed=1)
    add(study, "mv2_w1.0(16g4,17g4)", 42.0, CODE_LABEL, seed=0)
    add(study, "mv2_w1.0(16g4,17g4)", 44.0, CODE_LABEL, seed=1)
    add(study, "mv2_w1.0(13g4,14g4,16g4,17g4)", 35.0, IMAGE_LABEL, seed=0)
    add(study, "mv2_w1.0(17:1g4)", 41.0, FORMULA_LABEL, seed=0, seconds=1.5)
    add(study, "mv2_w1.0(12:1g2)", None, state=optuna.trial.TrialState.FAIL, failure="-2+3 @SUM(A1)", seed=0)
    return folder


@needs_chromium
def test_a_hostile_studys_text_runs_nowhere_in_the_report(hostile_study, tmp_path):
    control = tmp_path / "control.html"  # the same payload, unescaped: proof that the browser would show it ran
    control.write_text(f"<!DOCTYPE html><html><body>{IMAGE_LABEL}</body></html>")
    assert 'data-pwned="1"' in rendered_dom(control, tmp_path / "profile")

    result = run_main("ulsam_nas.report", "--study", hostile_study)
    assert result.returncode == 0, result.stderr
    report = hostile_study / "report"
    source = (report / "report.html").read_text()
    assert "<img src=x" not in source and "<script>document" not in source and "</script><script>" not in source
    dom = rendered_dom(report / "report.html", tmp_path / "profile")
    assert "js-plotly-plot" in dom and 'data-pwned="1"' not in dom
    # Shown as written: in the heading, in the paper configurations' list, and as plotly.js's label beside a point.
    assert f"<h1>ULSAM placement search: {escape(STUDY_NAME, quote=False)}</h1>" in dom
    assert f"<li>{escape(IMAGE_LABEL, quote=False)}: " in dom
    assert f">{escape(IMAGE_LABEL.removeprefix('MV2 '), quote=False)}</text>" in dom

    trials = pd.read_csv(report / "trials.csv").set_index("trial")
    assert trials.loc[5, "label"] == "'" + FORMULA_LABEL and trials.loc[6, "failure"] == "'-2+3 @SUM(A1)"
    assert trials.loc[2, "label"] == CODE_LABEL  # other text as it was
    assert trials.loc[5, "seconds"] == 1.5 and trials["top1"].dtype == float  # numbers stay numbers
    for table in ("genomes.csv", "pareto.csv"):
        genomes = pd.read_csv(report / table).set_index("genome")
        assert genomes.loc["mv2_w1.0(17:1g4)", "label"] == "'" + FORMULA_LABEL, table
        assert genomes["top1_mean"].dtype == float and genomes["seeds"].dtype == int, table


def test_a_genome_attribute_that_is_no_genome_string_is_refused_before_anything_is_written(hostile_study, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(hostile_study, folder)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{folder / 'study.db'}")
    study.add_trial(optuna.trial.create_trial(values=[20.0, 1e9, 1e7], user_attrs={"genome": SCRIPT_GENOME, "seed": 0}))
    result = run_main("ulsam_nas.report", "--study", folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "trial 7's genome: genome string" in result.stderr
    assert not (folder / "report").exists()


def test_a_label_that_closes_the_docstring_stays_in_it(hostile_study, tmp_path):
    out = tmp_path / "exported"
    result = run_main("ulsam_nas.export", "--study", hostile_study, "--trial", "max-top1", "--out", out, "--formats", "source")
    assert result.returncode == 0, result.stderr
    source = (out / "model.py").read_text()
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert f"Paper configuration: {CODE_LABEL}." in docstring
    spec = importlib.util.spec_from_file_location("exported_model", out / "model.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert "PWNED" not in os.environ


def test_a_hostile_study_name_and_labels_are_text_in_both_dashboard_notes(hostile_study):
    url = f"sqlite:///{hostile_study / 'study.db'}"
    study = optuna.load_study(study_name=STUDY_NAME, storage=url)
    publish_front(study, open_storage(url))
    genomes = optuna.load_study(study_name=STUDY_NAME + ":genomes", storage=url)
    for note in (get_note(study), get_note(genomes)):
        assert "<img" not in note and "</script>" not in note, note  # markdown may carry raw HTML: escaped
        assert escape(STUDY_NAME) in note
