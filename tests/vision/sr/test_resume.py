"""A PCL fine-tuning killed mid-run and resumed ends with the uninterrupted run's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from shared.training import Trainer, TrainerConfig
from shared.training.callbacks import Callback
from vision.sr.config import PCLConfig
from vision.sr.data import ImagePair, PatchDataset
from vision.sr.imaging import bicubic_lr
from vision.sr.model import EDSR
from vision.sr.tasks import DiscriminatorState, SRTask


class _Kill(Callback):
    def on_train_batch_end(self, trainer, task, outputs, batch_idx):
        if trainer.epoch == 1 and batch_idx == 1:
            raise KeyboardInterrupt


def _fit(run_dir: Path, kill: bool) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    hr = (torch.rand(24, 24, 3, generator=gen) * 255).round().byte().numpy()
    pairs = [ImagePair("x", hr, bicubic_lr(hr, 2))]
    loader = DataLoader(PatchDataset(pairs, 2, 16, length=8), batch_size=4)
    cfg = TrainerConfig(epochs=2, lr=1e-3, optimizer="adam", progress=False, log_every=0)
    torch.manual_seed(1)
    task = SRTask(EDSR(2, n_blocks=1, channels=8), PCLConfig(d_width=4), d_lr=1e-3)
    callbacks: list[Callback] = [DiscriminatorState(task)]
    if kill:
        with pytest.raises(KeyboardInterrupt):
            Trainer(cfg, run_dir=run_dir, callbacks=[*callbacks, _Kill()]).fit(task, loader)
        torch.manual_seed(1)
        task = SRTask(EDSR(2, n_blocks=1, channels=8), PCLConfig(d_width=4), d_lr=1e-3)
        callbacks = [DiscriminatorState(task)]
    Trainer(cfg, run_dir=run_dir, callbacks=callbacks).fit(task, loader)
    return task.state_dict()


def test_killed_and_resumed_pcl_run_matches_uninterrupted(tmp_path: Path):
    straight = _fit(tmp_path / "a", kill=False)
    resumed = _fit(tmp_path / "b", kill=True)
    assert set(straight) == set(resumed)
    assert any(k.startswith("disc.") for k in straight)  # the discriminator is in the state
    for key, value in straight.items():
        assert torch.allclose(value.float(), resumed[key].float(), atol=1e-6), key
