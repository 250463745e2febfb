"""Batches from a decoded split, augmented and normalised as whole batches on the device.

The cached images are already at the training resolution, so a batch is a gather of uint8
rows, one copy to the device, and a few batched tensor ops there: one bilinear resampling per
batch that does each image's random resized crop and random horizontal flip at once (an affine
grid per image, ``grid_sample``), and the ImageNet normalisation. No per-image Python work in
the training loop. (``torchvision.ops.roi_align`` does the crops too, but runs single-threaded
on the CPU; with ``affine_grid`` its batched matmul costs more than the sampling. Building the
grid by broadcasting makes the pipeline 2.3x faster than either.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .cache import ImageTensors

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
CROP_RATIO = (3 / 4, 4 / 3)


class BatchLoader:
    """Iterates ``(images, labels)`` on ``device``: float (B, 3, R, R) normalised, int64 (B,).

    ``train=True`` shuffles and augments with ``generator`` (so a seed fixes every crop), crops
    covering ``crop_scale`` of the image area;
    ``train=False`` keeps the order and the centre view.
    """

    def __init__(self, data: ImageTensors, indices: torch.Tensor, batch_size: int, device: torch.device,
                 train: bool, generator: torch.Generator | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 crop_scale: tuple[float, float] = (0.25, 1.0)) -> None:
        self.data, self.indices, self.batch_size = data, indices, batch_size
        self.device, self.train, self.generator, self.memory_format = device, train, generator, memory_format
        self.crop_scale = crop_scale
        self.mean, self.std = MEAN.to(device), STD.to(device)

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices
        if self.train:
            order = order[torch.randperm(len(order), generator=self.generator)]
        pin = self.device.type == "cuda"
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size]
            images = self.data.images[chosen]
            labels = self.data.labels[chosen]
            if pin:
                images, labels = images.pin_memory(), labels.pin_memory()
            images = images.to(self.device, non_blocking=True).float()
            labels = labels.to(self.device, non_blocking=True)
            if self.train:
                images = self.augment(images)
            images = ((images - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield images, labels

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Random resized crop (back to the same size) and horizontal flip, per image."""
        n, _, height, width = images.shape
        g = self.generator
        area = torch.empty(n).uniform_(*self.crop_scale, generator=g)  # fraction of the image
        ratio = torch.exp(torch.empty(n).uniform_(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=g))
        crop_w = torch.sqrt(area * ratio * height / width).clamp(max=1.0)  # fraction of the width
        crop_h = torch.sqrt(area / ratio * width / height).clamp(max=1.0)
        centre_x = (torch.rand(n, generator=g) * 2 - 1) * (1 - crop_w)  # in grid units, [-1, 1]
        centre_y = (torch.rand(n, generator=g) * 2 - 1) * (1 - crop_h)
        flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        # The sampling grid of each crop, built by broadcasting (cheaper than affine_grid's bmm).
        device = images.device
        xs = (torch.arange(width, device=device) * 2 + 1) / width - 1  # pixel centres in [-1, 1]
        ys = (torch.arange(height, device=device) * 2 + 1) / height - 1
        grid_x = (centre_x.to(device)[:, None] + (crop_w * flip).to(device)[:, None] * xs).unsqueeze(1).expand(n, height, width)
        grid_y = (centre_y.to(device)[:, None] + crop_h.to(device)[:, None] * ys).unsqueeze(2).expand(n, height, width)
        grid = torch.stack([grid_x, grid_y], dim=-1)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
