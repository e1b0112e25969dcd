"""``evaluate`` and ``predict``: score a run on labelled cases, segment new images.

Metrics are computed on each label's own voxel grid (the prediction is mapped back with the
inverse transforms), distances in mm from the label's spacing and in voxels. On the run's own
training folder only its held-out test cases (``split.json``) are scored.

``metrics.json`` (contract keys ``per_zone``, ``n_cases``, ``model``): per-zone means of the
final net; for the dual-path net also ``stages`` (``stage1``, ``stage2``); with a baseline run
also ``baseline`` and ``relative_masd_change_pct`` (``100 (MASD_dual - MASD_base) /
MASD_base`` per zone and stage: negative = lower MASD than the baseline; the paper reports
improvements of 7.56 % PZ, 11.00 % TZ, 58.43 % DPU, 19.67 % AFS, i.e. changes of -7.56 ...).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from medical.prostate import ZONES
from medical.prostate.config import ProstateConfig
from medical.prostate.data import (
    DatasetIndex,
    case_name,
    read_label,
    scan_dataset,
    validate_image,
)
from medical.prostate.infer import predict_case, write_label
from medical.prostate.metrics import MISSING_RULE, case_metrics, relative_change, summarise
from medical.prostate.model import DualPathNet, ZoneUNet, build_model
from medical.prostate.report import case_report, zone_table
from medical.prostate.train import LOGGERS, config_of_run
from shared.errors import InputError
from shared.io import read_json
from shared.runtime import resolve_device
from shared.training.run import FolderFiles, OutputFolder, RunFolder, data_fingerprint

__all__ = ["PAPER_MASD_IMPROVEMENT", "evaluate", "load_net", "predict"]

logger = logging.getLogger(__name__)

#: Relative MASD improvement of the dual-path net over the baseline in the paper's abstract (%).
PAPER_MASD_IMPROVEMENT = {"PZ": 7.56, "TZ": 11.00, "DPU": 58.43, "AFS": 19.67}


def load_net(
    run: RunFolder, cfg: ProstateConfig, name: str = "weights.pt"
) -> ZoneUNet | DualPathNet:
    """Build the run's net and load ``RUN/<name>`` (checked to belong to the run)."""
    if not (run.path / name).is_file():
        raise InputError(
            f"--run {run.path}: expected {name}, but it does not exist (is training finished?)."
        )
    net = build_model(cfg.model)
    run.load_weights(net, name)
    return net.eval()


def _nets(run: RunFolder, cfg: ProstateConfig) -> dict[str, ZoneUNet | DualPathNet]:
    if cfg.model.name == "dual-path":
        nets = {"stage1": load_net(run, cfg, "weights_stage1.pt")}
        if run.is_finished("stage2"):
            nets["stage2"] = load_net(run, cfg)
        return nets
    return {"baseline": load_net(run, cfg)}


def _open(path: str | os.PathLike[str], option: str = "--run") -> tuple[RunFolder, ProstateConfig]:
    run = RunFolder.open_existing(path, domain="prostate", command="train", option=option)
    return run, config_of_run(run)


def _split(run: RunFolder) -> dict[str, Any]:
    path = run.path / "split.json"
    if not path.is_file():
        raise InputError(f"--run {run.path}: expected split.json (is training finished?).")
    return dict(read_json(path))


def _score(
    nets: dict[str, ZoneUNet | DualPathNet],
    cfg: ProstateConfig,
    index: DatasetIndex,
    names: list[str],
    device: torch.device,
) -> dict[str, list[dict[str, Any]]]:
    by_name = {c.name: c for c in index.cases}
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in nets}
    for name in names:
        case = by_name[name]
        ref, spacing = read_label(case.label)
        for key, net in nets.items():
            pred, _ = predict_case(net.to(device), case.image, cfg.data, device=device)
            out[key].append(case_metrics(pred, ref, spacing, index.zones))
    return out


def evaluate(
    run_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    baseline: str | os.PathLike[str] | None = None,
    device: str = "auto",
    out: OutputFolder | None = None,
) -> dict[str, Any]:
    """Score a run (and optionally a baseline run) and write ``RUN/metrics.json``.

    The same metrics (and ``results.md``) also go to ``RUN/evaluations/held-out/`` for the
    run's own held-out cases, or ``RUN/evaluations/<data fingerprint>/`` for other data, so
    that an evaluation on other data never loses an earlier one.

    Args:
        run_path: The run folder (``contrasuite prostate train``).
        data_dir: An MSD-layout folder with labels. If it is the run's training folder, only
            the run's held-out test cases are scored.
        baseline: A baseline run folder to compare MASD against (scored on the same cases).
        device: ``auto``, ``cpu`` or ``cuda``.
        out: Where ``metrics.json``, ``results.md`` and ``log.txt`` go instead (``--out``,
            created once every input is checked); nothing is then written into the run.

    Returns:
        The metrics written to ``RUN/metrics.json`` (or ``out``).

    Raises:
        InputError: On a bad run folder, bad data, or a baseline trained on evaluated cases.
    """
    run, cfg = _open(run_path)
    split = _split(run)
    index = scan_dataset(data_dir)
    base_run = None
    if baseline is not None:
        base_run, base_cfg = _open(baseline, "--baseline")
        if base_cfg.model.name != "baseline":
            raise InputError(
                f"--baseline {baseline}: expected a baseline run, got a {base_cfg.model.name} run."
            )
    root = Path(data_dir).resolve()
    fingerprint = None if str(root) == split["data_dir"] else data_fingerprint(root)
    held_out = fingerprint is None or (cfg.data.dir is not None and fingerprint == run.data)
    # where these scores are kept besides RUN/metrics.json (see the docstring)
    kept = Path("evaluations") / ("held-out" if held_out else str(fingerprint))
    names = list(split["test"]) if held_out else [c.name for c in index.cases]
    if not names:
        raise InputError(
            f"--data-dir {data_dir} is the run's training folder and the run holds out no "
            "test cases (data.test_fraction=0); evaluate on another folder."
        )
    missing = sorted(set(names) - {c.name for c in index.cases})
    if missing:
        raise InputError(f"--data-dir {data_dir}: the run's test cases {missing} are missing.")
    if base_run is not None:
        base_split = _split(base_run)
        if base_split["data_dir"] == str(root):
            leak = sorted(
                set(names) & set(base_split["train"]) | set(names) & set(base_split["val"])
            )
            if leak:
                raise InputError(
                    f"--baseline {baseline} was trained on {len(leak)} of the evaluated cases "
                    f"(e.g. {leak[0]}); train both runs with the same data.split_seed."
                )
    dev = resolve_device(device)
    zones = index.zones
    zone_names = [ZONES[z - 1] for z in zones]
    dest: FolderFiles = run if out is None else out.create()
    with dest.logging(*LOGGERS):
        logger.info("evaluating %s on %d cases of %s", run.path, len(names), data_dir)
        scores = _score(_nets(run, cfg), cfg, index, names, dev)
        stages = {k: summarise(v, zones) for k, v in scores.items()}
        final_key = list(stages)[-1]
        result: dict[str, Any] = {
            "model": cfg.model.name,
            "n_cases": len(names),
            "per_zone": stages[final_key],
            "final": final_key,
            "zones_scored": zone_names,
            "cases": names,
            "held_out": held_out,
            "data_dir": str(root),
            "missing_rule": MISSING_RULE,
            "per_case": {k: {n: c for n, c in zip(names, v)} for k, v in scores.items()},
        }
        if cfg.model.name == "dual-path":
            result["stages"] = stages
        if base_run is not None:
            base_cfg = config_of_run(base_run)
            base = summarise(
                _score(_nets(base_run, base_cfg), base_cfg, index, names, dev)["baseline"], zones
            )
            result["baseline"] = {"run": str(base_run.path), "per_zone": base}
            result["relative_masd_change_pct"] = {
                k: relative_change(v, base, "masd_mm") for k, v in stages.items()
            }
            result["relative_masd_change_vox_pct"] = {
                k: relative_change(v, base, "masd_vox") for k, v in stages.items()
            }
            result["paper_masd_improvement_pct"] = PAPER_MASD_IMPROVEMENT
        if out is not None:
            out.write_json("metrics.json", {**result, "run": str(run.path)})
            out.write_text("results.md", _markdown(result, zone_names))
            logger.info("wrote %s", out.path / "metrics.json")
            return result
        # every data set's scores also stay in their own folder (first), so that scoring
        # other data later does not lose these; RUN/metrics.json holds the latest
        run.write_json(str(kept / "metrics.json"), result)
        run.write_text(str(kept / "results.md"), _markdown(result, zone_names))
        run.write_json("metrics.json", result)
        run.write_text("results.md", _markdown(result, zone_names))
        logger.info("wrote %s (and %s)", run.path / "metrics.json", run.path / kept)
    return result


def _markdown(result: dict[str, Any], zones: list[str]) -> str:
    parts = [
        f"# Prostate zones: {result['model']} on {result['n_cases']} cases",
        "",
        f"Data: {result['data_dir']} ({'held-out test cases' if result['held_out'] else 'all'})",
        "",
    ]
    tables = dict(result.get("stages", {result["final"]: result["per_zone"]}))
    if "baseline" in result:
        tables = {"baseline": result["baseline"]["per_zone"], **tables}
    for name, summary in tables.items():
        parts += [f"## {name}", "", zone_table(summary, zones), ""]
    if "relative_masd_change_pct" in result:
        parts += ["## Relative MASD change vs the baseline (%; negative = better)", ""]
        parts += ["| stage | " + " | ".join(zones) + " |", "|---" * (len(zones) + 1) + "|"]
        for stage, change in result["relative_masd_change_pct"].items():
            cells = [("n/a" if change.get(z) is None else f"{change[z]:+.1f}") for z in zones]
            parts.append(f"| {stage} | " + " | ".join(cells) + " |")
        paper = result["paper_masd_improvement_pct"]
        parts.append("| paper | " + " | ".join(f"-{paper[z]:.2f}" for z in zones) + " |")
        parts.append("")
    parts += ["Missing rule: " + result["missing_rule"], ""]
    return "\n".join(parts)


def _inputs(path: Path) -> list[tuple[Path, Path | None]]:
    """(image, label or None) pairs of a file, a plain folder or an MSD-layout folder."""
    if path.is_file():
        label = path.parent.parent / "labelsTr" / path.name
        return [(path, label if label.is_file() else None)]
    if not path.is_dir():
        raise InputError(
            f"--input {path}: expected a NIfTI file or a folder, but it does not exist."
        )
    nii = (".nii", ".nii.gz")
    if (path / "imagesTr").is_dir() or (path / "imagesTs").is_dir():
        pairs: list[tuple[Path, Path | None]] = []
        for sub in ("imagesTr", "imagesTs"):
            if (path / sub).is_dir():
                for image in sorted(p for p in (path / sub).iterdir() if p.name.endswith(nii)):
                    label = path / "labelsTr" / image.name
                    pairs.append((image, label if sub == "imagesTr" and label.is_file() else None))
        files = pairs
    else:
        files = [(p, None) for p in sorted(path.iterdir()) if p.name.endswith(nii)]
    if not files:
        raise InputError(f"--input {path}: expected .nii/.nii.gz images, but found none.")
    return files


def _check_distinct_names(images: list[Path]) -> None:
    """Refuse inputs whose outputs would collide (``p.nii`` and ``p.nii.gz``), before any write.

    Raises:
        InputError: Naming both inputs.
    """
    seen: dict[str, Path] = {}
    for image in images:
        other = seen.setdefault(case_name(image), image)
        if other != image:
            raise InputError(
                f"--input: {other} and {image} would both be written as "
                f"{case_name(image)}_zones.nii.gz; rename one of them or predict them separately."
            )


def predict(
    run_path: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    device: str = "auto",
    report: bool = True,
) -> list[Path]:
    """Segment images and write ``OUT/<case>_zones.nii.gz`` and ``OUT/<case>.html``.

    Every input is checked before anything is written. Labels found next to the images
    (``labelsTr/`` of an MSD folder) add metrics to the reports.

    Args:
        run_path: The run folder.
        input_path: A NIfTI file, a folder of them, or an MSD-layout folder.
        out: The output folder (created; other files in it are left alone).
        device: ``auto``, ``cpu`` or ``cuda``.
        report: Write the HTML reports.

    Returns:
        The label files written.

    Raises:
        InputError: If an input is missing or bad, two inputs would write the same output
            (``p.nii`` and ``p.nii.gz``), or the run or ``out`` cannot be used.
    """
    pairs = _inputs(Path(input_path))
    _check_distinct_names([image for image, _ in pairs])
    run, cfg = _open(run_path)
    for image, _ in pairs:
        validate_image(image)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: expected a folder, but it is a file.")
    net = load_net(run, cfg).to(resolve_device(device))
    dev = next(net.parameters()).device
    zones = tuple(json.loads((run.path / "split.json").read_text()).get("zones", (1, 2, 3, 4)))
    written = []
    for image, label_path in pairs:
        name = case_name(image)
        labels, source = predict_case(net, image, cfg.data, device=dev)
        written.append(write_label(labels, source, out / f"{name}_zones.nii.gz"))
        if not report:
            continue
        ref = metrics = None
        if label_path is not None:
            ref, spacing = read_label(label_path)
            metrics = case_metrics(labels, ref, spacing, zones)
        case_report(
            out / f"{name}.html",
            name=name,
            model=f"{cfg.model.name} ({run.path.name})",
            source=source,
            labels=labels,
            metrics=metrics,
            reference=ref,
            reference_name=label_path.name if label_path is not None else "",
        )
        logger.info("%s -> %s", image, out / f"{name}_zones.nii.gz")
    return written
