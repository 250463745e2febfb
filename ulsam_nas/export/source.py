"""The text an export writes: ``model.py``, a self-contained module that imports only torch and
whose ``build()`` makes the network (``model_source``), the description at its top and in the
README (``model_description``), and the ``README.md`` that shows how to run it
(``readme_text``). The block classes in ``model.py`` are the package's own, copied by
``inspect.getsource``, so the export cannot drift from what was searched and trained; the
state-dict names are the same, so weights saved by ``python -m ulsam_nas.train --save`` load
into ``build()``. The description carries text from a study (the paper label): it enters the
source only as an escaped literal (``docstring_literal``), so no label can end the docstring, and
the README only as Markdown that shows it as written (``markdown_literal``).
"""

from __future__ import annotations

import inspect

from ..models import costs, layers, ulsam
from ..models.backbones import get_backbone
from ..models.costs import Cost
from ..models.genome import INSERT, SUBSTITUTE
from ..names import shown
from .architecture import Architecture

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
LOADERS = {"torchscript": '`torch.jit.load("model.ts")`', "export": '`torch.export.load("model.pt2").module()`',
           "onnx": '`onnxruntime.InferenceSession("model.onnx")`'}


def docstring_literal(text: str) -> str:
    """A triple-quoted literal whose value is ``text`` exactly: each line escaped as ``repr`` escapes
    it (backslashes, control characters), every ``"`` escaped too, newlines kept for reading."""
    return '"""' + "\n".join(repr(line)[1:-1].replace('"', '\\"') for line in text.split("\n")) + '"""'


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
    helpers = [costs.check_groups, costs.check_variant, ulsam.conv_unit, ulsam.ULSAM, layers.ConvBNAct,
               *backbone.block_classes]
    pieces = [
        docstring_literal(f"{description}\n\nStandalone: imports only torch. `build()` returns the network (eval() it for "
                          "inference);\nweights.safetensors, when present, loads into it with load_state_dict.\n"),
        "from __future__ import annotations\n\nfrom collections import OrderedDict\n\nimport torch\n"
        "import torch.nn.functional as F\nfrom torch import nn",
        f"NUM_CLASSES = {arch.num_classes}\nINPUT_SIZE = {arch.resolution}\nVARIANTS = {costs.VARIANTS!r}\n"
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


def markdown_literal(text: str) -> str:
    """``text`` as Markdown that shows it as written: every ASCII punctuation character
    backslash-escaped (CommonMark lets any be), ``<``, ``>`` and ``&`` as HTML references, and its
    control characters as escapes (``names.shown``), so that no label starts a heading, a link,
    an image or raw HTML (``<img onerror=...>``, ``[x](javascript:...)``) in the README."""
    escaped = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
    return "".join(escaped.get(c) or ("\\" + c if c in MARKDOWN_PUNCTUATION else c) for c in shown(text))


MARKDOWN_PUNCTUATION = frozenset("!\"#$%'()*+,-./:;=?@[\\]^_`{|}~")  # ASCII punctuation less < > &


def model_description(arch: Architecture, cost: Cost, paper_label: str = "", markdown: bool = False) -> str:
    """What the export is, for the top of model.py and the README: genome, classes, params, MACs.
    ``markdown``: for the README, the label from the study as ``markdown_literal``."""
    genome = arch.genome
    label = markdown_literal(paper_label) if markdown else paper_label
    return (f"ULSAM placement {genome} ({genome.notation()}), {arch.num_classes} classes.\n\n"
            f"Params: {cost.params:,}; MACs at {arch.resolution}x{arch.resolution}: {cost.macs:,}."
            + (f"\nPaper configuration: {label}." if paper_label else ""))


def readme_text(arch: Architecture, description: str, formats: list[str], weights: bool) -> str:
    """README.md: the description and how to run the model, with its weights and compiled formats."""
    present = [LOADERS[f] for f in formats if f in LOADERS]
    compiled = f"\nThe same network, compiled: {' or '.join(present)}.\n" if present else ""
    return README.format(genome=arch.genome, description=description, size=arch.resolution,
                         weights=WEIGHTS_LINE if weights else "", weights_needs=" and safetensors" if weights else "",
                         compiled=compiled)
