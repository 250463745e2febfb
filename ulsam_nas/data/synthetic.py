"""A built-in, deterministic fine-grained stand-in, generated on the fly at any resolution.

Every image shows the same coarse object, an ellipse, on a cluttered background. Classes differ
only in fine detail on the object: the orientation and frequency of its stripe texture and
where a small part (a dot) sits on it. Everything else varies within a class: position, size,
shape and rotation of the object, its colour, the background's colour, gradient and distractor
stripes, and jitter on the class cues themselves. Telling classes apart means looking at the
right place on the object at fine scale, which is what spatial attention is for.

The cues are chosen so that a horizontal flip (a standard augmentation) never turns one class
into another: stripes run vertically, horizontally or as a checker, the part sits at the top,
at the bottom or as a pair on both sides.
"""

from __future__ import annotations

import itertools
import math
import random

import torch

NUM_CLASSES = 10
# 500 training images per class: the 10% validation split the search selects on (``VAL_FRACTION``)
# then holds as many images as the test split, so validation top-1 is no noisier than test top-1.
IMAGES_PER_CLASS = {"train": 500, "test": 50}
SPLIT_SEED = {"train": 0, "test": 1}
GENERATOR_VERSION = 3  # part of the cache key: bump when the images change

# Class cues: stripe pattern, stripe frequency (cycles per object radius) and where the part
# sits. Ten of the 18 combinations, fixed once, so some class pairs differ in a single cue.
PATTERNS = ("vertical", "horizontal", "checker")
FREQUENCIES = (1.0, 2.0)
PARTS = ("top", "bottom", "sides")
_CUES = random.Random(0).sample(list(itertools.product(range(3), range(2), range(3))), NUM_CLASSES)
CLASSES = tuple(f"{PATTERNS[p]}-x{FREQUENCIES[f]:g}-{PARTS[q]}" for p, f, q in _CUES)


def generate(split: str, resolution: int, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: uint8 (N, 3, R, R) and int64 (N,), the same for the same arguments."""
    generator = torch.Generator().manual_seed(SPLIT_SEED[split] * 1_000_003 + resolution)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(IMAGES_PER_CLASS[split])
    labels = labels[torch.randperm(len(labels), generator=generator)]
    images = torch.cat([_render(labels[i:i + chunk], resolution, generator) for i in range(0, len(labels), chunk)])
    return images, labels


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _render(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    n = len(labels)
    coords = (torch.arange(size) + 0.5) / size
    v, u = torch.meshgrid(coords, coords, indexing="ij")  # (R, R), in [0, 1]
    u, v = u.expand(n, size, size), v.expand(n, size, size)

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.view(n, 1, 1)

    # Background: colour, a linear gradient and faint distractor stripes of random orientation.
    background = torch.rand(n, 3, 1, 1, generator=generator) * 0.8 + 0.1
    angle = per_image(_uniform(n, 0, 2 * math.pi, generator))
    gradient = (u * torch.cos(angle) + v * torch.sin(angle) - 0.5) * per_image(_uniform(n, 0, 0.5, generator))
    clutter_angle = per_image(_uniform(n, 0, math.pi, generator))
    clutter = 0.08 * torch.sin(
        2 * math.pi * per_image(_uniform(n, 2, 6, generator)) * (u * torch.cos(clutter_angle) + v * torch.sin(clutter_angle))
    )
    image = background + (gradient + clutter).unsqueeze(1)

    # The object: an ellipse of random position, size, aspect and rotation.
    cx, cy = per_image(_uniform(n, 0.3, 0.7, generator)), per_image(_uniform(n, 0.3, 0.7, generator))
    radius = per_image(_uniform(n, 0.22, 0.34, generator))
    aspect = per_image(_uniform(n, 0.75, 1.33, generator))
    rotation = per_image(_uniform(n, 0, math.pi, generator))
    du, dv = u - cx, v - cy
    along = du * torch.cos(rotation) + dv * torch.sin(rotation)
    across = -du * torch.sin(rotation) + dv * torch.cos(rotation)
    inside = ((along / radius) ** 2 + (across / (radius * aspect)) ** 2 <= 1).unsqueeze(1)

    # Class cues, with within-class jitter symmetric under a horizontal flip.
    cues = torch.tensor(_CUES)[labels]
    pattern, part = per_image(cues[:, 0]), per_image(cues[:, 2])
    frequency = per_image(torch.tensor(FREQUENCIES)[cues[:, 1]] * _uniform(n, 0.85, 1.15, generator))
    tilt = per_image(torch.deg2rad(_uniform(n, -8, 8, generator)))
    phase_x, phase_y = per_image(_uniform(n, 0, 2 * math.pi, generator)), per_image(_uniform(n, 0, 2 * math.pi, generator))
    x = (du * torch.cos(tilt) + dv * torch.sin(tilt)) / radius
    y = (-du * torch.sin(tilt) + dv * torch.cos(tilt)) / radius
    wave_x = torch.sin(2 * math.pi * frequency * x + phase_x)
    wave_y = torch.sin(2 * math.pi * frequency * y + phase_y)
    stripes = torch.where(pattern == 0, wave_x, torch.where(pattern == 1, wave_y, wave_x * wave_y * 1.5))
    body = torch.rand(n, 3, 1, 1, generator=generator) * 0.7 + 0.15
    image = torch.where(inside, body + 0.4 * stripes.unsqueeze(1), image)

    # The part: a dot 0.6 radii from the centre, above, below, or one on each side.
    jitter = per_image(torch.deg2rad(_uniform(n, -20, 20, generator)))
    in_part = torch.zeros_like(inside)
    for which, direction in ((0, -math.pi / 2), (1, math.pi / 2), (2, 0.0), (2, math.pi)):
        angle = direction + jitter * (1 if direction != math.pi else -1)
        centre_u = cx + 0.6 * radius * torch.cos(angle)
        centre_v = cy + 0.6 * radius * torch.sin(angle)
        dot = ((u - centre_u) ** 2 + (v - centre_v) ** 2 <= (0.4 * radius) ** 2) & (part == which)
        in_part |= dot.unsqueeze(1)
    part_colour = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.5, 0.05, 0.95).expand(n, 3, 1, 1)
    image = torch.where(in_part, part_colour, image)

    image = image + 0.04 * torch.randn(image.shape, generator=generator)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)
