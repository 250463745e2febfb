"""ulsam-nas: neural architecture search for placing ULSAM attention in compact CNNs."""

from .cost import count_cost
from .genome import Genome, Placement
from .model import build_model
from .ulsam import ULSAM

__all__ = ["Genome", "Placement", "ULSAM", "build_model", "count_cost"]
