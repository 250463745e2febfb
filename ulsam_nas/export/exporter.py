"""python -m ulsam_nas.export: an architecture as a standalone PyTorch model, verified.

    python -m ulsam_nas.export --study studies/mv2-synthetic --trial knee --out exported/
    python -m ulsam_nas.export --study studies/mv2-synthetic --trial "max-top1 macs<=250e6" --out exported/
    python -m ulsam_nas.export --space mv2 --genome "(16, 17)" --g 4 --out exported/ [--weights w.safetensors]

Writes ``model.py`` (imports only torch; ``build()`` makes the network), ``weights.safetensors``
when weights are given, ``model.ts`` (TorchScript), ``model.pt2`` (torch.export), ``model.onnx``
when the onnx extra is installed, ``arch.json`` (genome, costs, objectives, SHA-256 of every
file) and a ``README.md``. Then every format runs in a fresh ``python -I`` where ``ulsam_nas``
cannot be imported, and must match the in-harness model to 1e-5 on a fixed input.

From a study, a rule picks a genome of the front beyond seed noise (``report.pick``): its
objectives in arch.json are its validation top-1 mean, std and seed count, since one seed's
figure is not what the front was judged on. A trial number takes that one training's values.

The block classes in ``model.py`` are the package's own, copied by ``inspect.getsource``, so
the export cannot drift from what was searched and trained; the state-dict names are the same,
so weights saved by ``python -m ulsam_nas.train --save`` load into ``build()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cost import count_cost
from ..models.backbones import get_backbone
from ..models.build import PlacedNet, build_model
from ..models.genome import INSERT, SUBSTITUTE, Genome
from ..models import layers, ulsam

FORMATS = ("source", "torchscript", "export", "onnx")
README = """# {genome}

{description}

Run from this folder (needs only torch{weights_needs}):

```python
import torch
from model import build
net = build().eval(){weights}
print(net(torch.randn(1, 3, {size}, {size})).argmax(1))
```

{compiled}"""
WEIGHTS_LINE = '\nfrom safetensors.torch import load_file; net.load_state_dict(load_file("weights.safetensors"))'
FILES = {"source": "model.py", "torchscript": "model.ts", "export": "model.pt2", "onnx": "model.onnx"}
TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """Writing or verifying the export failed."""


@dataclass(frozen=True)
class Architecture:
    """What is exported: a genome and the settings it is built with."""

    genome: Genome
    num_classes: int
    width_mult: float
    channel_multiple: int | None = None
    input_size: int | None = None  # a proxy's resolution (its strides adapted), or None for 224
    resolution: int = 224

    def build(self) -> PlacedNet:
        return build_model(self.genome, self.num_classes, self.width_mult, channel_multiple=self.channel_multiple,
                           input_size=self.input_size)

    @classmethod
    def from_weights_metadata(cls, genome: Genome, metadata: dict[str, str]) -> Architecture:
        """The architecture a ``python -m ulsam_nas.train --save`` file was trained as."""
        from ..train.fidelity import Fidelity

        fidelity = Fidelity(**json.loads(metadata["fidelity"]))
        scaled = fidelity.width_mult != 1.0
        return cls(genome, int(metadata["num_classes"]), genome.width_mult * fidelity.width_mult,
                   fidelity.channel_multiple if scaled else None, fidelity.resolution, fidelity.resolution)


# -- model.py ---------------------------------------------------------------------------------


def model_source(arch: Architecture, description: str) -> str:
    """A self-contained module (imports only torch) that builds ``arch``."""
    backbone = get_backbone(arch.genome.backbone)
    specs = arch.genome.layer_specs(arch.width_mult, arch.channel_multiple, arch.input_size)
    variant = "official"
    lines = []
    for spec in specs:
        placement = arch.genome.placement(spec.number)
        if placement is not None and placement.action == SUBSTITUTE:
            lines.append(f'        ("layer{spec.number}", ULSAM({spec.out_ch}, {placement.groups}, "{variant}")),')
        else:
            lines.append(f'        ("layer{spec.number}", {backbone.layer_source(spec)}),')
        if placement is not None and placement.action == INSERT:
            lines.append(f'        ("after{spec.number}", ULSAM({spec.out_ch}, {placement.groups}, "{variant}")),')
    helpers = [ulsam.check_groups, ulsam._check_variant, ulsam._conv_unit, ulsam.ULSAM, layers.ConvBNAct,
               *backbone.block_classes]
    pieces = [
        f'"""{description}\n\nStandalone: imports only torch. `build()` returns the network (eval() it for inference);\n'
        f'weights.safetensors, when present, loads into it with load_state_dict.\n"""',
        "from __future__ import annotations\n\nfrom collections import OrderedDict\n\nimport torch\n"
        "import torch.nn.functional as F\nfrom torch import nn",
        f"NUM_CLASSES = {arch.num_classes}\nINPUT_SIZE = {arch.resolution}\nVARIANTS = {ulsam.VARIANTS!r}\n"
        f"BN_MOMENTUM = {ulsam.BN_MOMENTUM!r}",
        *[inspect.getsource(h).rstrip() for h in helpers],
        'class Net(nn.Module):\n    """The backbone with its ULSAM blocks (`features`) and the classifier (`head`)."""\n\n'
        "    def __init__(self, features: nn.Sequential, head: nn.Module) -> None:\n        super().__init__()\n"
        "        self.features = features\n        self.head = head\n\n"
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        return self.head(self.features(x))",
        "def build(num_classes: int = NUM_CLASSES) -> Net:\n    features = nn.Sequential(OrderedDict([\n"
        + "\n".join(lines) + "\n    ]))\n"
        f"    return Net(features, {backbone.head_source(specs[-1].out_ch)})",
    ]
    return "\n\n\n".join(pieces) + "\n"


# -- verification in a clean interpreter ---------------------------------------------------------

_VERIFY = r'''
import importlib.util, json, os, sys
sys.modules["ulsam_nas"] = None  # the export must not need the harness
sys.dont_write_bytecode = True  # leave nothing behind in the export folder
import torch
from safetensors.torch import load_file
out = sys.argv[1]
formats = json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("exported_model", f"{out}/model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x = torch.load(f"{out}/.verify-input.pt", weights_only=True)
results = {}
model = module.build().eval()
weights = f"{out}/weights.safetensors"
model.load_state_dict(load_file(weights if os.path.exists(weights) else f"{out}/.verify-weights.safetensors"))
with torch.no_grad():
    results["source"] = model(x)
    if "torchscript" in formats:
        results["torchscript"] = torch.jit.load(f"{out}/model.ts")(x)
    if "export" in formats:
        results["export"] = torch.export.load(f"{out}/model.pt2").module()(x)
if "onnx" in formats:
    import onnxruntime
    session = onnxruntime.InferenceSession(f"{out}/model.onnx")
    results["onnx"] = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
torch.save(results, f"{out}/.verify-output.pt")
'''


def verify(out_dir: Path, formats: list[str], model: torch.nn.Module, example: torch.Tensor) -> dict[str, float]:
    """Run every format in ``python -I`` (no ulsam_nas) on ``example``; the max abs difference of
    each to ``model``'s output. Without weights.safetensors, ``build()`` gets ``model``'s weights
    from a temporary file, so a random initialisation is compared like for like."""
    from safetensors.torch import save_file

    with torch.no_grad():
        reference = model(example)
    torch.save(example, out_dir / ".verify-input.pt")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / ".verify-weights.safetensors"))
    try:
        result = subprocess.run([sys.executable, "-I", "-c", _VERIFY, str(out_dir), json.dumps(formats)],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise ExportError(f"the exported model does not run in a clean interpreter:\n{result.stderr.strip()[-2000:]}")
        outputs = torch.load(out_dir / ".verify-output.pt", weights_only=True)
    finally:
        for name in (".verify-input.pt", ".verify-output.pt", ".verify-weights.safetensors"):
            (out_dir / name).unlink(missing_ok=True)
    return {name: float((output - reference).abs().max()) for name, output in outputs.items()}


# -- export -------------------------------------------------------------------------------------


def _compiled_line(formats: list[str]) -> str:
    loaders = {"torchscript": '`torch.jit.load("model.ts")`', "export": '`torch.export.load("model.pt2").module()`',
               "onnx": '`onnxruntime.InferenceSession("model.onnx")`'}
    present = [loaders[f] for f in formats if f in loaders]
    return f"\nThe same network, compiled: {' or '.join(present)}.\n" if present else ""


def check_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """ValueError naming the first tensor that does not fit the architecture."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"the weights do not fit the architecture: tensor {name!r} is missing")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"the weights do not fit the architecture: tensor {name!r} has shape "
                             f"{tuple(state[name].shape)}, the model needs {tuple(tensor.shape)}")
    extra = [name for name in state if name not in expected]
    if extra:
        raise ValueError(f"the weights do not fit the architecture: unexpected tensor {extra[0]!r}")


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))


def export(arch: Architecture, out_dir: Path, formats: list[str], weights: dict[str, torch.Tensor] | None = None,
           info: dict | None = None, log=print) -> dict:
    """Write and verify the export of ``arch`` into ``out_dir`` (which must be empty or new, or
    holding only files of an earlier export). Returns the arch.json content."""
    model = arch.build().eval()
    if weights is not None:
        check_weights(model, weights)
        model.load_state_dict(weights)
    formats = [f for f in formats if f != "onnx" or _onnx_available()]
    genome = arch.genome
    cost = count_cost(genome, arch.num_classes, arch.width_mult, arch.resolution, channel_multiple=arch.channel_multiple,
                      proxy=arch.input_size is not None)
    description = (f"ULSAM placement {genome} ({genome.notation()}), {arch.num_classes} classes.\n\n"
                   f"Params: {cost.params:,}; MACs at {arch.resolution}x{arch.resolution}: {cost.macs:,}."
                   + (f"\nPaper configuration: {info['paper_label']}." if info and info.get("paper_label") else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, action) -> None:
        path = out_dir / name
        action(path)
        written.append(path)

    try:
        write("model.py", lambda p: p.write_text(model_source(arch, description), encoding="utf-8"))
        if weights is not None:
            from safetensors.torch import save_file

            write("weights.safetensors", lambda p: save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                                             str(p), metadata={"genome": str(genome)}))
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(2, 3, arch.resolution, arch.resolution, generator=generator)
        if "torchscript" in formats:
            with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export; still asked for
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                write("model.ts", lambda p: torch.jit.save(torch.jit.script(model), str(p)))
        batch = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}  # any batch size
        if "export" in formats:
            write("model.pt2", lambda p: torch.export.save(torch.export.export(model, (example,), dynamic_shapes=batch), str(p)))
        if "onnx" in formats:
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates each step
                write("model.onnx", lambda p: torch.onnx.export(model, (example,), str(p), dynamo=True,
                                                                dynamic_shapes=batch, external_data=False))
        log(f"verifying {', '.join(formats)} in a clean interpreter ...")
        differences = verify(out_dir, [f for f in formats if f != "source"], model, example)
        bad = {name: diff for name, diff in differences.items() if not diff <= TOLERANCE}
        if bad:
            raise ExportError("exported formats disagree with the harness model: "
                              + ", ".join(f"{name} max |diff| {diff:.3g}" for name, diff in bad.items()))
        readme = README.format(genome=genome, description=description, size=arch.resolution,
                               weights=WEIGHTS_LINE if weights is not None else "",
                               weights_needs=" and safetensors" if weights is not None else "",
                               compiled=_compiled_line(formats))
        write("README.md", lambda p: p.write_text(readme, encoding="utf-8"))
        arch_json = {
            **(info or {}), "genome": str(genome), "notation": genome.notation(), "backbone": genome.backbone,
            "width_mult": arch.width_mult, "num_classes": arch.num_classes, "resolution": arch.resolution,
            "channel_multiple": arch.channel_multiple, "proxy_input_size": arch.input_size,
            "params": cost.params, "macs": cost.macs, "formats": formats,
            "max_abs_difference": differences, "weights": weights is not None,
            "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in written},
        }
        write("arch.json", lambda p: p.write_text(json.dumps(arch_json, indent=2) + "\n", encoding="utf-8"))
    except Exception:
        for path in written:  # remove what this export wrote, and nothing else
            path.unlink(missing_ok=True)
        raise
    return arch_json


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from ..cli import ArgumentParser, fail, genome_from_cli

    parser = ArgumentParser(prog="python -m ulsam_nas.export",
                            description="Export an architecture as a standalone PyTorch model, verified.")
    parser.add_argument("--study", type=Path, default=None, help="study folder to take the trial from")
    parser.add_argument("--trial", default="knee",
                        help="a rule on the front beyond seed noise, by mean top-1 over seeds: knee | max-top1 | "
                             "'max-top1 macs<=250e6' | 'max-top1 params<=2.5M' | 'max-top1 latency<=4ms' (a cost of the "
                             "study); or a trial number (that one training's values)")
    parser.add_argument("--space", default="mv2", help="without --study: mv1, mv2 or a .toml path")
    parser.add_argument("--genome", default=None, help="without --study: paper notation or canonical genome string")
    parser.add_argument("--g", type=int, default=None, help="group count for placements without their own gN")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's first)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--weights", type=Path, default=None, help="weights saved by python -m ulsam_nas.train --save")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the study's, else 1000)")
    parser.add_argument("--formats", default="source,torchscript,export,onnx",
                        help="comma-separated subset of source,torchscript,export,onnx (onnx needs the onnx extra)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    args = parser.parse_args(argv)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        fail(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    if "source" not in formats:
        formats.insert(0, "source")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())) and not args.force:
        fail(f"{args.out} exists and is not empty (use --force to write into it)")
    info: dict = {}
    study = None
    try:
        if args.study is not None:
            from ..analysis.front import Front, trial_seed
            from ..analysis.objectives import Selection
            from ..report.writer import pick
            from ..studies import StudyNotFound, load_study

            try:
                study, pointer = load_study(args.study)
            except StudyNotFound as error:
                fail(str(error))
            num_classes = args.num_classes or int(study.user_attrs.get("num_classes", 1000))
            info = {"space": pointer["space"], "study": study.study_name}
            if args.trial.isdigit():
                number = int(args.trial)
                if number >= len(study.trials):
                    fail(f"study {study.study_name!r} has no trial {number} (it has {len(study.trials)})")
                trial = study.trials[number]
                if trial.state != optuna.trial.TrialState.COMPLETE:
                    fail(f"trial {number} is {trial.state.name}, not COMPLETE: only trained trials can be exported")
                genome = Genome.from_string(trial.user_attrs["genome"])
                info |= {"trial": number, "seed": trial_seed(trial),
                         "objectives": dict(zip(Selection.of_study(study).names, trial.values)),
                         "paper_label": trial.user_attrs.get("paper_label", "")}
            else:
                picked = pick(study, args.trial)
                genome = Genome.from_string(picked.genome)
                selection = Selection.of_study(study)
                trained = selection.trained.name
                costs = dict(zip((o.name for o in selection.computed), picked.costs))
                shrunk = Front.of_study(study).estimate(picked)  # what the pick was chosen by, free of its seed luck
                info |= {"trial": picked.trial, "paper_label": picked.label,
                         "objectives": {trained: picked.mean, f"{trained}_std": picked.std, f"{trained}_shrunk": shrunk,
                                        "seeds": picked.n, **costs}}
            info["top1_split"] = "validation"  # the search never looks at the test split
            if "latency_target_key" in study.user_attrs:
                info["latency"] = latency_on_target(genome, num_classes, study.user_attrs)
        else:
            if args.genome is None:
                fail("give --study (and --trial) or --genome (with --space and --g)")
            from ..models.spaces import load_space

            space = load_space(args.space)
            genome = genome_from_cli(args.genome, args.g, args.width, space)
            num_classes = args.num_classes or 1000
            info = {"space": space.name, "paper_label": space.paper_labels().get(genome, "")}
        weights = None
        arch = Architecture(genome, num_classes, genome.width_mult)
        if args.weights is not None:
            weights, metadata = _read_weights(args.weights)
            if "fidelity" in metadata:
                arch = Architecture.from_weights_metadata(genome, metadata)
            if args.num_classes and args.num_classes != arch.num_classes:
                fail(f"--num-classes {args.num_classes} does not match the weights' {arch.num_classes} classes")
        result = export(arch, args.out, formats, weights, info, log=lambda m: print(m, file=sys.stderr))
    except ValueError as error:
        fail(str(error))
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if study is not None:
        from ..studies import artifact_store

        store = artifact_store(args.study)
        for name in ("arch.json", "model.py"):  # on the study: Optuna keeps finished trials read-only
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(args.out / name), study_or_trial=study)
    print(f"exported {result['genome']} ({result['params']:,} params, {result['macs'] / 1e6:.2f}M MACs) to {args.out}: "
          + ", ".join(sorted([*result["sha256"], "arch.json"])))
    differences = result["max_abs_difference"].items()
    print("verified in a clean interpreter: " + ", ".join(f"{k} max |diff| {v:.1e}" for k, v in differences))
    if "latency" in result:
        latency = result["latency"]
        print(f"latency on {latency['target']}: predicted {latency['predicted_ms']:.2f} ms, measured "
              f"{latency['measured_ms']:.2f} ms per image")
    return 0


def latency_on_target(genome: Genome, num_classes: int, study_attrs: dict) -> dict:
    """The genome's latency on the study's target: predicted from the table, and measured end to
    end here as ``python -m ulsam_nas.latency --check`` measures (``measured_ms`` at the table's
    machine speed, ``measured_now_ms`` as the clock read it; see ``latency.py``)."""
    from ..latency.table import LatencyTable, Target, check

    target = Target(**study_attrs["latency_target_key"])
    table = LatencyTable.load(target, genome.backbone)
    if table.fill([genome], num_classes):
        table.save()
    measured = check(table, [genome], num_classes)
    return {"target": target.describe(), "study_target": study_attrs.get("latency_target", ""),
            "predicted_ms": measured.predicted[0], "measured_ms": measured.measured[0],
            "measured_now_ms": measured.measured_now[0]}


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - safetensors/torch raise several kinds for bad files
        raise ValueError(f"cannot read weights {path}: {error}") from None
    if isinstance(saved, dict) and "state_dict" in saved:
        return saved["state_dict"], dict(saved.get("metadata") or {})
    return saved, {}

