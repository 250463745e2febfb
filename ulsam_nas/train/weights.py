"""Trained weights on disk: ``save_weights`` writes a network's state dict with the metadata that
rebuilds it (genome, class count, fidelity, ...), as safetensors for a ``.safetensors`` path and
as a weights-only torch file (``{"state_dict": ..., "metadata": ...}``) for any other suffix.
``python -m ulsam_nas.train --save`` writes these files and ``python -m ulsam_nas.export
--weights`` reads them (``read_weights``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.build import PlacedNet


def save_weights(model: PlacedNet, path: Path, metadata: dict[str, str]) -> None:
    """Weights as safetensors (``.safetensors``) or a weights-only torch file (anything else),
    with the build arguments in the metadata so the network can be rebuilt."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path), metadata=metadata)
    else:
        torch.save({"state_dict": state, "metadata": metadata}, path)


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict in a weights file and its metadata (empty when it has none); ValueError for
    a file that is missing or cannot be read."""
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
