"""The training step on a CUDA GPU: the decoded split resident on the GPU, no host
synchronisation inside an epoch, and a data-wait share timed with CUDA events.

Marked ``gpu``: ``make test`` deselects them (``-m "not gpu"`` in pyproject.toml), and ``make
gpu-check`` runs them with ``pytest --noconftest -m gpu`` on a machine that has torch but neither
Ray nor Optuna, which the suite's conftest imports. Run on a machine without CUDA, they skip.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ulsam_nas import Genome
from ulsam_nas.data import load_images
from ulsam_nas.data.loader import BatchLoader, resident
from ulsam_nas.train.fidelity import SMOKE
from ulsam_nas.train.loop import StepClock, build_proxy, train, train_epoch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")
FIDELITY = replace(SMOKE, epochs=2, train_subset=512, test_subset=200)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ULSAM_NAS_CACHE", str(tmp_path / "cache"))


def test_a_split_that_fits_is_kept_on_the_gpu_and_batches_are_gathered_there():
    data = load_images("synthetic", "test", 32)
    on_gpu = resident(data, CUDA)
    assert on_gpu.images.is_cuda and on_gpu.labels.is_cuda
    assert torch.equal(on_gpu.images.cpu(), data.images)
    assert not resident(data, CUDA, max_share=0.0).images.is_cuda  # too large: stays in host memory
    loader = BatchLoader(on_gpu, torch.arange(len(data)), 64, CUDA, train=True,
                         generator=torch.Generator(CUDA).manual_seed(0))
    images, labels = next(iter(loader))
    assert images.is_cuda and labels.is_cuda and images.shape == (64, 3, 32, 32)


def test_an_epoch_on_the_gpu_never_waits_for_the_host():
    data = resident(load_images("synthetic", "train", 32), CUDA)
    loader = BatchLoader(data, torch.arange(1024), 64, CUDA, train=True, generator=torch.Generator(CUDA).manual_seed(0),
                         memory_format=torch.channels_last)
    model = build_proxy(Genome.parse("mv2", "(16, 17)", g=4), SMOKE, len(data.classes)).to(CUDA)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, fused=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=2 * len(loader))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    clock = StepClock(cuda=True)
    step = dict(model=model, loader=loader, optimizer=optimizer, step_scheduler=scheduler, autocast=autocast,
                loss_fn=torch.nn.CrossEntropyLoss(), clock=clock)
    train_epoch(**step)  # warm-up: cuDNN's autotuner and the allocator's first requests
    clock.end_epoch()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        loss_sum = train_epoch(**step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    clock.end_epoch()
    assert torch.isfinite(loss_sum).item()
    assert 0 <= clock.wait_seconds <= clock.step_seconds


def test_training_on_the_gpu_reports_a_true_data_wait_share():
    result = train(Genome.parse("mv2", "(16, 17)", g=4), "synthetic", FIDELITY, seed=0, device="cuda",
                   evaluate_on="val")
    assert 0 <= result.data_wait_share <= 1
    assert result.images_per_second > 0 and 0 <= result.top1 <= 100
    assert next(result.model.parameters()).is_cuda
