"""Batches from a decoded split, augmented and normalised as whole batches on the device.

The cached images are already at the training resolution, so a batch is a gather of uint8
rows, one copy to the device, and a few batched tensor ops there: a random resized crop per
image (``torchvision.ops.roi_align`` with one box per image), a random horizontal flip and the
ImageNet normalisation. No per-image Python work in the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torchvision.ops import roi_align

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
        area = torch.empty(n).uniform_(*self.crop_scale, generator=g) * height * width
        log_ratio = torch.empty(n).uniform_(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=g)
        ratio = torch.exp(log_ratio)
        crop_w = torch.sqrt(area * ratio).clamp(max=width)
        crop_h = torch.sqrt(area / ratio).clamp(max=height)
        x0 = torch.rand(n, generator=g) * (width - crop_w)
        y0 = torch.rand(n, generator=g) * (height - crop_h)
        boxes = torch.stack([torch.arange(n, dtype=torch.float32), x0, y0, x0 + crop_w, y0 + crop_h], dim=1)
        flip = torch.rand(n, generator=g) < 0.5
        cropped = roi_align(images, boxes.to(images.device), output_size=(height, width), aligned=True)
        return torch.where(flip.to(images.device).view(n, 1, 1, 1), cropped.flip(-1), cropped)
