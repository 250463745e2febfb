"""Verification of an export in a clean interpreter: every written format (``model.py`` with its
weights, TorchScript, torch.export, ONNX) runs in a fresh ``python -I`` where ``ulsam_nas``
cannot be imported, on a fixed input, and its output is compared with the in-harness model's
(``verify``); a format further than ``TOLERANCE`` from it fails the export (``check_agreement``,
``ExportError``). The script leaves nothing behind in the export folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

TOLERANCE = 1e-5  # max abs difference of any output to the in-harness model's


class ExportError(RuntimeError):
    """Writing or verifying the export failed."""


VERIFY_SCRIPT = r'''
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
        result = subprocess.run([sys.executable, "-I", "-c", VERIFY_SCRIPT, str(out_dir), json.dumps(formats)],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise ExportError(f"the exported model does not run in a clean interpreter:\n{result.stderr.strip()[-2000:]}")
        outputs = torch.load(out_dir / ".verify-output.pt", weights_only=True)
    finally:
        for name in (".verify-input.pt", ".verify-output.pt", ".verify-weights.safetensors"):
            (out_dir / name).unlink(missing_ok=True)
    return {name: float((output - reference).abs().max()) for name, output in outputs.items()}


def check_agreement(differences: dict[str, float]) -> None:
    """ExportError naming every format whose output is further than ``TOLERANCE`` from the harness model's."""
    bad = {name: diff for name, diff in differences.items() if not diff <= TOLERANCE}
    if bad:
        raise ExportError("exported formats disagree with the harness model: "
                          + ", ".join(f"{name} max |diff| {diff:.3g}" for name, diff in bad.items()))
