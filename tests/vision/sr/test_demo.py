"""The demo step (smoke size): a run folder, a page with crops side by side, re-runnable."""

from __future__ import annotations

from pathlib import Path

from shared.domain import DemoContext, DemoResult
from vision.sr.commands import demo_step


def test_demo_step_smoke_and_rerun(tmp_path: Path):
    ctx = DemoContext(out_dir=tmp_path, smoke=True, device="cpu", progress=False)
    result = demo_step(ctx)
    assert isinstance(result, DemoResult)
    assert set(result.metrics) == {"psnr_y/bicubic", "psnr_y/l1", "psnr_y/pcl"}
    assert all(5 < v < 60 for v in result.metrics.values())
    page = (tmp_path / result.links["crops and table"]).read_text()
    for label in ("bicubic", "L1-only", "L1 + PCL", "HR", "chelsea", "coffee", "PSNR-Y"):
        assert label in page
    for rel in result.links.values():
        assert (tmp_path / rel).exists(), rel
    again = demo_step(ctx)  # the finished run is reused, not retrained
    assert again.metrics == result.metrics
