"""The domain pipelines' steps of ``contrasuite demo``, after the core showcase.

Each domain's command module exposes ``demo_step(out_dir, quick, *, seed, device, progress,
smoke) -> dict`` returning the fields of :class:`pipelines.demo.DemoResult`; this module
registers them under the domain's name, in the order the demo runs them. Light: the domain
module is imported when its step runs.
"""

from __future__ import annotations

from pipelines.demo import DemoContext, DemoResult, register_demo_step

__all__: list[str] = []


def _kwargs(ctx: DemoContext) -> dict[str, object]:
    return {"seed": ctx.seed, "device": ctx.device, "progress": ctx.progress, "smoke": ctx.smoke}


@register_demo_step("ecg", title="ProtoECGNet on synthetic PTB-XL")
def _ecg_demo(ctx: DemoContext) -> DemoResult:
    from pipelines.ecg_cli import demo_step

    return DemoResult(**demo_step(ctx.out_dir, ctx.quick, **_kwargs(ctx)))  # type: ignore[arg-type]
