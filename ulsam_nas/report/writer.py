"""The study's front over seeds as an offline HTML report, CSV tables and a summary
(``python -m ulsam_nas.report``, ``command.py``).

A trial is one (genome, seed) training; the report is about genomes: each one's top-1 is the
mean over its COMPLETE seeds, and the front is the one beyond seed noise (``analysis/front.py``).
Every top-1 is measured on the validation split held out from the training images, except the
final test figures (``--final`` of the search: retrained on train+val, evaluated on the test split).

``write_report`` writes ``report.html`` (Plotly, with plotly.js embedded so it opens offline):
the seed noise σ, mean top-1 against each cost (MACs, params, ...) with 95% confidence intervals
of the mean, the front highlighted, every paper configuration marked and labelled as the paper
writes it, the vanilla backbone marked (``figures.py``), the hypervolume history on genome means
(``history.py``), the front, the picks (``analysis/picks.py``), the paper configurations' verdicts
and, when present, the final test figures; ``trials.csv`` (every training), ``genomes.csv`` (every
genome: mean, std, CI, seeds, costs, verdict, test figures) and ``pareto.csv`` (the front, same
columns), from ``tables.py``. Its ``ReportSummary`` is what the command prints: σ, front size,
hypervolume, the knee, where each paper configuration sits, the test figures.

Every figure, column and sentence follows the study's objectives (``objectives.Selection``):
one figure of mean top-1 per cost (MACs, params, latency, ...), one column per objective.
Text from the study (its name, genomes, paper labels, verdicts) is data: escaped in the HTML and
the figures, and kept from running as a formula in the CSV files (``escaping.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd

from ..analysis.agreement import agreement_of
from ..analysis.front import Front, GenomeStats, SeedNoise, genomes_table, paper_status
from ..analysis.picks import knee
from ..names import shown
from ..safe_files import check_no_links, make_folder, write_file
from .escaping import fill, write_csv
from .figures import front_figure, hypervolume_figure
from .history import Reference, hypervolume_history, reference_for
from .tables import final_rows, final_tests, genomes_with_tests, oneshot_table, trials_frame
from .wording import costs_text, genome_name, seed_spread

FINAL_SECTION = "Test split (final retraining on train+val)"


@dataclass
class ReportSummary:
    front_size: int  # genomes on the front beyond seed noise
    hypervolume: float  # of the genomes' mean points
    reference: Reference
    knee: GenomeStats
    knee_costs: str  # e.g. "268.59M MACs, 2.235M params"
    knee_estimate: float  # the knee's shrunk mean top-1 (Front.estimate)
    noise: SeedNoise
    signal_line: str  # whether the genomes differ beyond seed noise (Signal.verdict)
    paper_lines: list[str]
    files: list[Path]  # every file the search uploads as a study artifact
    final_lines: list[str] = field(default_factory=list)  # test-split figures, when the study has them
    oneshot_lines: list[str] = field(default_factory=list)  # rank agreement, for a one-shot search

    def text(self) -> str:
        k = self.knee
        lines = [
            self.noise.describe(),
            self.signal_line,
            f"front beyond seed noise: {self.front_size} genome{'s' * (self.front_size != 1)}; hypervolume "
            f"{self.hypervolume:.4f} of the mean top-1 ({self.reference.describe()})",
            f"knee: {genome_name(k)}: validation top-1 {self.knee_estimate:.2f}% shrunk ({seed_spread(k.scores)}), "
            f"{self.knee_costs} (first trial {k.trial})",
        ]
        if self.paper_lines:
            lines += ["the paper's configurations (validation top-1):", *[f"  {line}" for line in self.paper_lines]]
        if self.final_lines:
            lines += [f"{FINAL_SECTION}:", *[f"  {line}" for line in self.final_lines]]
        lines += self.oneshot_lines
        lines.append("wrote " + ", ".join(str(f) for f in self.files))
        return "\n".join(map(shown, lines))  # each line one line: a study's text cannot drive the terminal


def write_report(study: optuna.Study, out_dir: Path, root: Path | None = None) -> ReportSummary:
    """Write report.html, trials.csv, genomes.csv and pareto.csv to ``out_dir``; ValueError
    without a complete trial. ``root``: the study folder when ``out_dir`` is in it (default
    ``out_dir``): no file is written through a symbolic link below it (``safe_files``:
    LinkRefused, a ValueError, and nothing written)."""
    front = Front.of_study(study)
    if not front.stats:
        raise ValueError(f"study {study.study_name!r} has no finished trial with results yet")
    trials = study.get_trials(deepcopy=False)
    reference = reference_for(study)  # checks the study's attributes: a crafted one writes nothing
    root = out_dir if root is None else root
    make_folder(root, out_dir)
    for name in ("report.html", "trials.csv", "genomes.csv", "pareto.csv"):
        check_no_links(root, out_dir / name)  # refused before any of them is written
    history = hypervolume_history(trials, reference)
    labels = [t.user_attrs["paper_label"] for t in trials if t.user_attrs.get("paper_label")]
    statuses = [s for s in paper_status(front, list(dict.fromkeys(labels))) if s.stats is not None]
    tests = final_tests(study)

    genomes = genomes_with_tests(genomes_table(front), tests)
    pareto = genomes.set_index("genome").loc[[m.genome for m in front.members]].reset_index()
    write_csv(trials_frame(study), out_dir / "trials.csv", root)
    write_csv(genomes, out_dir / "genomes.csv", root)
    write_csv(pareto, out_dir / "pareto.csv", root)

    verdicts = dict(zip(genomes["genome"], genomes["verdict"]))
    target = study.user_attrs.get("latency_target", "")
    tolerances = ", ".join(f"{o.label} within {front.selection.tolerance(o):.0%}" for o in front.selection.computed)
    chosen = knee(front)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    retrained = final_rows(front, tests)
    final_lines = [r["genome"] + (f" ({r['label']})" if r["label"] else "")
                   + f": validation {r['validation top-1']}; test {r['test top-1']}" for r in retrained]
    table = {"index": False, "float_format": lambda v: f"{v:.3f}", "na_rep": ""}  # pandas escapes the cells
    split = ("every top-1 figure is measured on the validation split, held out from the training images"
             + (f", except in the section “{FINAL_SECTION}”." if tests else "."))
    parts = [
        fill("<h1>ULSAM placement search: {name}</h1>", name=study.study_name),
        fill("<p><strong>{noise}</strong>; {split}</p>", noise=front.noise.describe(), split=split),
        fill("<p><strong>{signal}</strong>. Means named as winners (the front's order, the knee, the picks) are shrunk "
             "toward the study's mean by that between-genome std (empirical Bayes), so the best of many noisy means does "
             "not carry its luck.</p>", signal=front.signal.verdict(front.noise)),
        fill("<p>{trials} trials ({complete} complete) over {genomes} genomes; front beyond seed noise: {members}; "
             "hypervolume of the mean top-1 {volume:.4f}. Knee: <code>{knee}</code>.</p>", trials=len(trials),
             complete=complete, genomes=len(front.stats), members=len(front.members), volume=history[-1][1],
             knee=genome_name(chosen)),
        *(front_figure(front, verdicts, o, f"top-1 vs {o.label}" + (f" on {target}" if o.name == "latency" else ""))
          .to_html(full_html=False, include_plotlyjs=i == 0) for i, o in enumerate(front.selection.computed)),
        hypervolume_figure(history, reference).to_html(full_html=False, include_plotlyjs=False),
        fill("<h2>Pareto front beyond seed noise</h2><p>Every genome that no genome clearly dominates: at no worse cost "
             "({tolerances}) and a mean top-1 higher by more than a simultaneous bound, t(1 - 0.05/m) standard errors "
             "with the pooled σ, m the genomes of no worse cost, so that a genome is wrongly called dominated with a "
             "chance of at most 5%. All genomes: <code>genomes.csv</code>.</p>", tolerances=tolerances),
        pareto.to_html(**table),
        "<h2>Picks</h2><p>What <code>python -m ulsam_nas.export --trial RULE</code> takes:</p><ul>"
        + "".join(fill("<li><code>{rule}</code>: <code>{genome}</code>, validation top-1 {estimate:.2f}% shrunk "
                       "({spread})</li>", rule=rule, genome=genome_name(s), estimate=front.estimate(s),
                       spread=seed_spread(s.scores))
                  for rule, s in (("knee", chosen), ("max-top1", front.members[0]))) + "</ul>",
        "<h2>The paper's configurations</h2><ul>"
        + "".join(fill("<li>{status}</li>", status=s.describe()) for s in statuses) + "</ul>",
    ]
    agreement = agreement_of(study)
    if agreement is not None:
        parts += ["<h2>One-shot scores against standalone training</h2><p>"
                  + "<br>".join(fill("{line}", line=line) for line in agreement.lines()) + "</p><p>Every genome trained "
                  "standalone (the confirmed top of the one-shot ranking and the paper configurations): its one-shot "
                  "score, validation top-1 of its path in the supernet with inherited weights, beside its standalone "
                  "mean. The front, the picks and export use the standalone values only.</p>",
                  oneshot_table(front, agreement).to_html(**table)]
    if tests:
        parts += [f"<h2>{FINAL_SECTION}</h2><p>The chosen genomes retrained on train+val with their seeds and "
                  "evaluated once on the test split, beside their validation figures from the search.</p>",
                  pd.DataFrame(retrained).to_html(index=False)]
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ULSAM search report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>" + "\n".join(parts) + "</body></html>")
    write_file(root, out_dir / "report.html", html)
    files = [out_dir / name for name in ("report.html", "trials.csv", "genomes.csv", "pareto.csv")]
    return ReportSummary(len(front.members), history[-1][1], reference, chosen, costs_text(front, chosen),
                         front.estimate(chosen), front.noise, front.signal.verdict(front.noise),
                         [s.describe() for s in statuses], files, final_lines,
                         agreement.lines() if agreement is not None else [])
