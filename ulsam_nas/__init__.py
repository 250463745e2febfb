"""ulsam-nas: neural architecture search for placing ULSAM attention in compact CNNs."""

from .cost import count_cost
from .models.build import build_model
from .models.genome import Genome, Placement
from .models.ulsam import ULSAM

__all__ = ["Genome", "Placement", "ULSAM", "build_model", "count_cost"]
