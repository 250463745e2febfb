"""Vectorised ULSAM against the per-group loop of the authors' code, forward + backward.

    python benchmarks/ulsam_speed.py [--device cuda] [--batch 32] [--channels 512] [--size 14]

Prints, per g, the loop's and the vectorised module's time and their ratio (targets: never
slower than the loop; at least 1.2x faster at g=16 on CPU, 5x on a GPU), and each module's time
as a multiple of one ``x.clone()`` of the input (its memory-traffic floor), next to an SE block
of the same width. Every figure in a row is measured in the same run, interleaved, so drift on a
shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn
from torch.utils.benchmark import Timer

from ulsam_nas.models.ulsam import ULSAM, GroupLoopULSAM

TARGET_SPEEDUP = {"cpu": 1.2, "cuda": 5.0}


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (reduction 16), the usual channel-attention yardstick."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


def forward_backward_seconds(module: nn.Module | None, x: torch.Tensor, rounds: int) -> list[float]:
    """Median seconds per forward+backward, one figure per round (``module=None``: x.clone())."""
    sync = "torch.cuda.synchronize()" if x.is_cuda else ""
    if module is None:
        stmt = f"x.clone(); {sync}"
    else:
        stmt = f"module(x).backward(grad); x.grad = None; {sync}"
        with torch.no_grad():
            grad = torch.ones_like(module(x))
    timer = Timer(stmt, globals={"module": module, "x": x, "torch": torch, "grad": grad if module else None},
                  num_threads=torch.get_num_threads())
    timer.timeit(3)  # warm-up
    return [timer.blocked_autorange(min_run_time=0.4).median for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.size, args.size, device=device, requires_grad=True)
    print(f"device {device} ({torch.get_num_threads()} threads), input {tuple(x.shape)} NCHW, "
          f"forward+backward, median of {args.rounds} rounds")

    clone = statistics.median(forward_backward_seconds(None, x, args.rounds))
    se = statistics.median(forward_backward_seconds(SqueezeExcite(args.channels).to(device), x, args.rounds))
    print(f"x.clone(): {clone * 1e3:.3f} ms; SE block (r=16): {se * 1e3:.2f} ms = {se / clone:.1f}x clone\n")
    print(f"{'g':>3} {'loop ms':>9} {'vectorised ms':>14} {'speedup':>8} {'ULSAM/clone':>12}")
    target = TARGET_SPEEDUP["cuda" if device.type == "cuda" else "cpu"]
    met = True
    for g in args.groups:
        loop = GroupLoopULSAM(args.channels, g).to(device)
        vectorised = ULSAM(args.channels, g).to(device)
        loop_times, vec_times = [], []
        for _ in range(args.rounds):  # interleave so both see the same machine state
            loop_times += forward_backward_seconds(loop, x, 1)
            vec_times += forward_backward_seconds(vectorised, x, 1)
        loop_s, vec_s = statistics.median(loop_times), statistics.median(vec_times)
        speedup = loop_s / vec_s
        print(f"{g:>3} {loop_s * 1e3:>9.2f} {vec_s * 1e3:>14.2f} {speedup:>7.2f}x {vec_s / clone:>11.1f}x")
        met &= speedup >= 1.0 and (g != 16 or speedup >= target)
    print(f"\ntargets (never slower than the loop; >= {target}x at g=16): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
