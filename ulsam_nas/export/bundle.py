"""The export folder, written and verified as one bundle (``export``): ``model.py`` (imports only
torch; ``build()`` makes the network, ``source.py``), ``weights.safetensors`` when weights are
given, ``model.ts`` (TorchScript), ``model.pt2`` (torch.export), ``model.onnx`` when the onnx
extra is installed, ``README.md`` and ``arch.json`` (genome, costs, objectives, the verification's
differences, SHA-256 of every file). Every format is verified in a clean interpreter
(``verify.py``) before the README and arch.json are written; on any failure, what this export
wrote is removed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import tempfile
import warnings
from pathlib import Path

import torch

from ..cost import count_cost
from ..safe_files import check_no_links, make_folder, replace_file, write_file
from .architecture import Architecture, check_weights
from .source import model_description, model_source, readme_text
from .verify import check_agreement, verify

FORMATS = ("source", "torchscript", "export", "onnx")


def onnx_available() -> bool:
    """Whether the onnx extra (onnx, onnxscript, onnxruntime) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))


def export(arch: Architecture, out_dir: Path, formats: list[str], weights: dict[str, torch.Tensor] | None = None,
           info: dict | None = None, log=print, root: Path | None = None) -> dict:
    """Write and verify the export of ``arch`` into ``out_dir`` (which must be empty or new, or
    holding only files of an earlier export). Returns the arch.json content. ``root``: the study
    folder when ``out_dir`` is in it (default ``out_dir``): no file is written through a symbolic
    link below it (``safe_files``: LinkRefused, a ValueError, and nothing written)."""
    model = arch.build().eval()
    if weights is not None:
        check_weights(model, weights)
        model.load_state_dict(weights)
    formats = [f for f in formats if f != "onnx" or onnx_available()]
    genome = arch.genome
    cost = count_cost(genome, arch.num_classes, arch.width_mult, arch.resolution, channel_multiple=arch.channel_multiple,
                      proxy=arch.input_size is not None)
    description = model_description(arch, cost, (info or {}).get("paper_label", ""))
    root = out_dir if root is None else root
    make_folder(root, out_dir)
    for name in ("model.py", "weights.safetensors", "model.ts", "model.pt2", "model.onnx", "README.md", "arch.json"):
        check_no_links(root, out_dir / name)  # refused before any of them is written
    written: list[Path] = []

    def write(name: str, content) -> None:
        """``content``: the text or bytes, or a function writing to a binary file."""
        path = out_dir / name
        if callable(content):
            replace_file(root, path, content)
        else:
            write_file(root, path, content)
        written.append(path)

    try:
        write("model.py", model_source(arch, description))
        if weights is not None:
            from safetensors.torch import save

            write("weights.safetensors", save({k: v.contiguous() for k, v in model.state_dict().items()},
                                              metadata={"genome": str(genome)}))
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(2, 3, arch.resolution, arch.resolution, generator=generator)
        if "torchscript" in formats:
            with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export; still asked for
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                write("model.ts", lambda f: torch.jit.save(torch.jit.script(model), f))
        if "export" in formats or "onnx" in formats:
            # One torch.export trace serves both formats: the ONNX exporter takes the program as it
            # is instead of tracing the model again (a third of an export's time).
            batch = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}  # any batch size
            program = torch.export.export(model, (example,), dynamic_shapes=batch)
        if "export" in formats:
            write("model.pt2", lambda f: torch.export.save(program, f))
        if "onnx" in formats:
            # The exporter saves to a path only: into a private folder, then copied as every file is.
            with contextlib.redirect_stdout(io.StringIO()), tempfile.TemporaryDirectory() as private:
                onnx_file = Path(private) / "model.onnx"
                torch.onnx.export(program, f=str(onnx_file), dynamo=True, external_data=False,
                                  dynamic_shapes=batch)  # names the axis "batch"
                write("model.onnx", onnx_file.read_bytes())
        log(f"verifying {', '.join(formats)} in a clean interpreter ...")
        differences = verify(out_dir, [f for f in formats if f != "source"], model, example)
        check_agreement(differences)
        label = (info or {}).get("paper_label", "")
        readme = readme_text(arch, model_description(arch, cost, label, markdown=True), formats, weights is not None)
        write("README.md", readme)
        arch_json = {
            **(info or {}), "genome": str(genome), "notation": genome.notation(), "backbone": genome.backbone,
            "width_mult": arch.width_mult, "num_classes": arch.num_classes, "resolution": arch.resolution,
            "channel_multiple": arch.channel_multiple, "proxy_input_size": arch.input_size,
            "params": cost.params, "macs": cost.macs, "formats": formats,
            "max_abs_difference": differences, "weights": weights is not None,
            "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in written},
        }
        write("arch.json", json.dumps(arch_json, indent=2) + "\n")
    except Exception:
        for path in written:  # remove what this export wrote, and nothing else
            path.unlink(missing_ok=True)
        raise
    return arch_json
