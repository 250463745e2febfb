import json
import subprocess
import sys

import optuna
import pytest

from ulsam_nas import Genome, build_model
from ulsam_nas.train.fidelity import SMOKE
from ulsam_nas.train.loop import build_proxy
from ulsam_nas.train.weights import save_weights

from .commands import run_main, run_module, run_program
from .conftest import random_genome

CLEAN_LOAD = r'''
import importlib.util, json, os, sys
sys.modules["ulsam_nas"] = None
sys.dont_write_bytecode = True
import torch
from safetensors.torch import load_file
out, size, has_weights = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
spec = importlib.util.spec_from_file_location("m", f"{out}/model.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = m.build().eval()
scripted = torch.jit.load(f"{out}/model.ts")
# Without a weights file the exported formats carry the harness model's initial weights: the
# TorchScript model's state dict must load into build() by the same names.
net.load_state_dict(load_file(f"{out}/weights.safetensors") if has_weights else scripted.state_dict())
x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    outputs = [net(x), scripted(x)]  # and whichever of the other formats the export wrote
    if os.path.exists(f"{out}/model.pt2"):
        outputs.append(torch.export.load(f"{out}/model.pt2").module()(x))
if os.path.exists(f"{out}/model.onnx"):
    import onnxruntime
    session = onnxruntime.InferenceSession(f"{out}/model.onnx")
    outputs.append(torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]))
print(json.dumps({"params": sum(p.numel() for p in net.parameters()), "shape": list(outputs[0].shape),
                  "diff": max(float((o - outputs[0]).abs().max()) for o in outputs)}))
'''


def export_cli(*args: str) -> subprocess.CompletedProcess:
    return run_module("ulsam_nas.export", *args)


def load_clean(out, size: int, weights: bool) -> dict:
    result = run_program([sys.executable, "-I", "-c", CLEAN_LOAD, str(out), str(size), "1" if weights else "0"],
                         capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_paper_configuration_exports_standalone_with_the_cost_models_params(tmp_path):
    out = tmp_path / "exported"
    result = export_cli("--space", "mv2", "--genome", "(13, 14, 16, 17)", "--g", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "verified in a clean interpreter" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "arch.json", "model.onnx", "model.pt2", "model.py", "model.ts"]
    source = (out / "model.py").read_text()
    assert "from ulsam_nas" not in source and "import ulsam_nas" not in source
    cost = run_main("ulsam_nas.cost", "--space", "mv2", "--genome", "(13, 14, 16, 17)", "--g", "4", "--json")
    loaded = load_clean(out, 224, weights=False)
    assert loaded["params"] == json.loads(cost.stdout)["params"] == 2_630_936
    assert loaded["shape"] == [1, 1000] and loaded["diff"] <= 1e-5
    import onnx

    onnx_input = onnx.load(out / "model.onnx").graph.input[0]
    assert onnx_input.name == "x" and onnx_input.type.tensor_type.shape.dim[0].dim_param == "batch"  # any batch size
    arch = json.loads((out / "arch.json").read_text())
    assert arch["genome"] == "mv2_w1.0(13g4,14g4,16g4,17g4)" and arch["paper_label"] == "MV2 (13, 14, 16, 17) g=4"
    assert arch["params"] == 2_630_936
    assert set(arch["sha256"]) == {"model.py", "model.ts", "model.pt2", "model.onnx", "README.md"}
    readme = (out / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    ran = run_program([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("tensor(["), ran.stderr  # the README's lines run as written


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_random_genome_with_trained_weights(tmp_path, spaces):
    import random

    genome = random_genome(spaces["mv1"], random.Random(7), width_mult=1.0)
    weights = tmp_path / "w.safetensors"
    model = build_proxy(genome, SMOKE, num_classes=10)
    save_weights(model, weights, {"genome": str(genome), "num_classes": "10",
                                  "fidelity": json.dumps({**SMOKE.__dict__})})
    out = tmp_path / "exported"
    # TorchScript alone beside the source: every format's export is test_paper_configuration_exports_standalone's.
    result = export_cli("--space", "mv1", "--genome", str(genome), "--weights", str(weights), "--out", str(out),
                        "--formats", "source,torchscript")
    assert result.returncode == 0, result.stderr
    assert (out / "weights.safetensors").is_file()
    loaded = load_clean(out, SMOKE.resolution, weights=True)
    assert loaded["shape"] == [1, 10] and loaded["diff"] <= 1e-5
    assert loaded["params"] == sum(p.numel() for p in model.parameters())
    import torch
    from safetensors.torch import load_file

    reference = build_proxy(genome, SMOKE, 10).eval()
    reference.load_state_dict(load_file(weights))
    arch = json.loads((out / "arch.json").read_text())
    assert arch["proxy_input_size"] == 32 and arch["channel_multiple"] == 16 and arch["weights"]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    script = torch.jit.load(str(out / "model.ts"))
    with torch.no_grad():
        assert float((script(x) - reference(x)).abs().max()) <= 1e-5


def test_export_from_a_study_by_rule_takes_the_genome_mean_over_seeds_and_uploads_artifacts(study_dir, tmp_path):
    out = tmp_path / "picked"
    result = export_cli("--study", str(study_dir), "--trial", "max-top1 params<=1.6M", "--out", str(out),
                        "--formats", "source,torchscript")
    assert result.returncode == 0, result.stderr
    arch = json.loads((out / "arch.json").read_text())
    assert arch["trial"] == 1 and arch["genome"] == "mv2_w1.0(16g4,17g4)" and arch["num_classes"] == 10
    # Seeds 0 and 1 gave 42 and 44 (and a reused 44): the mean over distinct seeds, not the best run.
    objectives = arch["objectives"]
    assert objectives["top1"] == 43.0 and objectives["top1_std"] == pytest.approx(2 ** 0.5) and objectives["seeds"] == 2
    assert 42 < objectives["top1_shrunk"] < 43  # the mean pulled toward the study's: what the pick was chosen by
    assert objectives["macs"] == arch["macs"] and objectives["params"] == arch["params"]
    assert arch["top1_split"] == "validation" and arch["paper_label"] == "MV2 (16, 17) g=4"
    assert "model.ts" in arch["sha256"] and "model.pt2" not in arch["sha256"]
    storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'study.db'}")
    study = optuna.load_study(study_name="mv2-synthetic", storage=storage)
    artifacts = optuna.artifacts.get_all_artifact_meta(study)
    assert sorted(a.filename for a in artifacts) == ["arch.json", "model.py"]


def test_export_of_a_trial_number_takes_that_trainings_values(study_dir, tmp_path):
    out = tmp_path / "trial"
    result = export_cli("--study", str(study_dir), "--trial", "7", "--out", str(out), "--formats", "source")
    assert result.returncode == 0, result.stderr
    arch = json.loads((out / "arch.json").read_text())
    assert arch["trial"] == 7 and arch["seed"] == 1 and arch["genome"] == "mv2_w1.0(16g4,17g4)"
    assert arch["objectives"] == {"top1": 44.0, "macs": arch["macs"], "params": arch["params"]}
    assert arch["top1_split"] == "validation"


@pytest.mark.parametrize("case, message", [
    ("unknown-trial", "has no trial 99 (it has 12)"),
    ("not-complete", "trial 5 is FAIL, not COMPLETE"),
    ("bad-weights", "the weights do not fit the architecture: tensor 'features.layer16.depthwise.0.weight' is missing"),
    ("not-empty", "exists and is not empty (use --force"),
    ("no-genome", "give --study (and --trial) or --genome"),
])
def test_export_bad_input(study_dir, tmp_path, case, message):
    out = tmp_path / "out"
    args = ["--study", str(study_dir), "--trial", "1", "--out", str(out)]
    if case == "unknown-trial":
        args[3] = "99"
    elif case == "not-complete":
        args[3] = "5"
    elif case == "bad-weights":
        weights = tmp_path / "w.pt"
        save_weights(build_model(Genome("mv2"), 10), weights, {})  # vanilla MV2's weights for MV2 + (16, 17)
        args += ["--weights", str(weights)]
    elif case == "not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "no-genome":
        args = ["--out", str(out)]
    result = run_main("ulsam_nas.export", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    if case == "not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists() or not any(out.iterdir())
