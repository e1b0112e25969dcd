"""A user's bad inputs across every command: exit 2, one true line, nothing written or changed.

Each case runs the real command line in-process (``pipelines.cli.main``) against a small world of
fixtures built once for the module: corrupt or truncated files of each format the commands read
(YAML, CSV, WFDB, NIfTI, PNG/JPEG, ``.npz``, RecBole atomic files), folders where files are
expected and the reverse, run folders of another domain, odd values. For every case the test checks
the exit status, that stderr holds exactly one line (as a terminal shows it: progress bars redraw
in place) naming the file or option, that no traceback is printed, that the output path was not
created, and that nothing in the world changed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main
from shared.training.run import RunFolder

# Small settings so that a case that is wrongly accepted ends quickly instead of training.
DIG = ["--methods", "simclr", "--epochs", "1", "batch_size=64", "model.width=8",
       "trainer.progress=false", "trainer.threads=1", "trainer.max_train_batches=2"]  # fmt: skip
SEP = ["model.width=4", "batch_size=32", "trainer.progress=false", "trainer.threads=1",
       "--epochs", "1"]  # fmt: skip
SRT = ["--size", "tiny", "--epochs", "1", "data.patch_size=16", "data.batch_size=4",
       "data.batches_per_epoch=2", "data.val_crop=40", "pretrain.epochs=1", "pcl.d_width=4",
       "trainer.progress=false", "trainer.threads=1"]  # fmt: skip
PT = ["data.roi=16,16,4", "data.spacing=4,4,6", "model.base_filters=4", "trainer.progress=false",
      "trainer.threads=1", "data.augment=false", "data.samples_per_volume=1", "--epochs", "1",
      "stage2.epochs=1", "data.val_fraction=0.25", "data.test_fraction=0.25"]  # fmt: skip
ECG = ["model.width=8", "model.layers=1,1,1,1", "trainer.epochs=1", "stages.feature_epochs=1",
       "stages.joint_epochs=1", "stages.fusion_epochs=1", "trainer.progress=false",
       "trainer.threads=1", "data.cache=false"]  # fmt: skip
REC = ["--models", "GRU4Rec", "--quick", "--epochs", "1", "trainer.max_train_batches=1"]

OUT = "{W}/out"  # every case's output path: it must not exist afterwards


def _png(path: Path, size: int = 40, channels: int = 3, value: int | None = None) -> None:
    from PIL import Image

    rng = np.random.default_rng(len(path.name))
    shape = (size, size, channels) if channels > 1 else (size, size)
    arr = rng.integers(0, 255, shape) if value is None else np.full(shape, value)
    Image.fromarray(arr.astype(np.uint8)).save(path)


CONFIGS = {
    "ecg": "medical.ecg.config:ECGConfig",
    "prostate": "medical.prostate.config:ProstateConfig",
    "sepclr": "medical.sepclr.config:SepCLRConfig",
    "sr": "vision.sr.config:SRConfig",
}


def _marker_run(path: Path, domain: str) -> None:
    """A folder marked as a finished-looking ``domain`` train run with its default config.

    Only the marker and config are real: the cases that use it are refused before any weights
    are read (another domain's run, a bad value checked first).
    """
    import importlib

    module, name = CONFIGS[domain].split(":")
    config = getattr(importlib.import_module(module), name)()
    run = RunFolder.prepare(path, domain=domain, command="train", config=config).create()
    if domain == "sr":
        for stage in ("pretrain", "pcl", "l1"):
            run.mark_finished(stage)
    (path / "weights.pt").write_bytes(b"not a checkpoint: never read by these cases")


def _build(w: Path) -> None:
    import nibabel as nib

    w.mkdir(parents=True)
    (w / "file.txt").write_text("keep me\n")
    # YAML configs
    (w / "list.yaml").write_text("- trainer\n- epochs\n")
    (w / "syntax.yaml").write_text("trainer: {epochs: [1, 2\n")
    (w / "wrongtype.yaml").write_text("trainer:\n  epochs: ten\n")
    (w / "unknown.yaml").write_text("trainer:\n  lrr: 0.1\n")
    (w / "scalar.yaml").write_text("42\n")
    (w / "dir.yaml").mkdir()
    (w / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01garbage\x00")
    # run folders of each domain (only their markers matter to these cases)
    for domain in ("prostate", "sepclr", "sr", "ecg"):
        _marker_run(w / f"run_{domain}", domain)
    # ECG: a small synthetic PTB-XL set, then damaged copies
    assert main(["ecg", "synth", "--out", str(w / "ecg"), "--n-records", "10", "-q"]) == 0
    for name in ("ecg_emptydb", "ecg_hdronly", "ecg_scpnocol", "ecg_badhea", "ecg_truncdat",
                 "ecg_fmt24", "ecg_norecords"):  # fmt: skip
        shutil.copytree(w / "ecg", w / name)
    (w / "ecg_emptydb/ptbxl_database.csv").write_text("")
    header = (w / "ecg_hdronly/ptbxl_database.csv").read_text().splitlines()[0]
    (w / "ecg_hdronly/ptbxl_database.csv").write_text(header + "\n")
    rows = (w / "ecg_scpnocol/scp_statements.csv").read_text().splitlines()
    (w / "ecg_scpnocol/scp_statements.csv").write_text(
        "\n".join(",".join(r.split(",")[:2]) for r in rows) + "\n"
    )
    rec = "records100/00000/00003_lr"
    (w / "ecg_badhea" / f"{rec}.hea").write_text("this is not a header\n")
    dat = w / "ecg_truncdat" / f"{rec}.dat"
    dat.write_bytes(dat.read_bytes()[:100])
    hea = w / "ecg_fmt24" / f"{rec}.hea"
    hea.write_text(hea.read_text().replace(".dat 16 ", ".dat 24 "))
    shutil.rmtree(w / "ecg_norecords/records100")
    # recsys data sets
    (w / "empty.txt").write_text("")
    (w / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (w / "nousers.txt").write_text("u1\nu2\nu3\n")
    (w / "atomA").mkdir()
    (w / "atomA/other.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n")
    (w / "atomB").mkdir()
    (w / "atomB/atomB.inter").write_text("foo:token\tbar:token\n1\t2\n3\t4\n")
    # prostate: phantoms, then damaged copies
    argv = ["prostate", "phantom", "--out", str(w / "ph"), "--n-cases", "2", "--n-unlabelled",
            "0", "--shape", "16,16,4", "--spacing", "4,4,6"]  # fmt: skip
    assert main(argv) == 0
    for name in ("pr_badjson", "pr_truncimg", "pr_shape", "pr_labels7", "pr_noimages",
                 "pr_nolabels"):  # fmt: skip
        shutil.copytree(w / "ph", w / name)
    case = "prostate_001.nii.gz"
    (w / "pr_badjson/dataset.json").write_text("{not json")
    img = w / "pr_truncimg/imagesTr" / case
    img.write_bytes(img.read_bytes()[:300])
    affine = np.diag([4.0, 4.0, 6.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((9, 9, 4), np.uint8), affine),
             str(w / "pr_shape/labelsTr" / case))  # fmt: skip
    lab = nib.load(str(w / "pr_labels7/labelsTr" / case))
    assert isinstance(lab, nib.Nifti1Image)
    arr = np.asarray(lab.dataobj).astype(np.uint8)
    arr[arr == 2] = 7
    arr[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(arr, lab.affine), str(w / "pr_labels7/labelsTr" / case))
    for f in (w / "pr_noimages/imagesTr").iterdir():
        f.unlink()
    shutil.rmtree(w / "pr_nolabels/labelsTr")
    (w / "masks_empty").mkdir()
    (w / "masks_corrupt").mkdir()
    (w / "masks_corrupt/prostate_00.nii.gz").write_bytes(b"\x1f\x8b\x08garbage")
    (w / "corrupt.nii.gz").write_bytes(gzip.compress(b"not a nifti header at all" * 10))
    (w / "text.nii.gz").write_text("plain text, not gzip\n")
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.float32), np.eye(4)), str(w / "flat2d.nii.gz"))
    _png(w / "scan.png", 16, 1)
    (w / "predin").mkdir()
    shutil.copy(w / "ph/imagesTr/prostate_000.nii.gz", w / "predin/case.nii.gz")
    # sepclr
    groups = np.array([0, 1] * 6)
    imgs = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    np.savez(w / "good.npz", train_images=imgs, test_images=imgs, train_groups=groups,
             test_groups=groups)  # fmt: skip
    real = (w / "good.npz").read_bytes()
    (w / "trunc.npz").write_bytes(real[: len(real) // 2])
    np.savez(w / "wrongdim.npz", train_images=np.zeros(12), test_images=np.zeros(12),
             train_groups=groups, test_groups=groups)  # fmt: skip
    (w / "data.txt").write_text("a,b\n")
    for name in ("csv_nogroup", "csv_empty", "csv_corruptpng"):
        (w / name).mkdir()
        for i in range(4):
            _png(w / name / f"{i}.png", 12, 1, 30 * i)
    csv_rows = "".join(f"{i}.png,{i % 2}\n" for i in range(4))
    (w / "csv_nogroup/labels.csv").write_text("path,label\n" + csv_rows)
    (w / "csv_empty/labels.csv").write_text("path,group\n")
    (w / "csv_corruptpng/labels.csv").write_text("path,group\n" + csv_rows)
    (w / "csv_corruptpng/2.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    # sr
    (w / "srdata").mkdir()
    for i in range(3):
        _png(w / f"srdata/s{i}.png")
    shutil.copytree(w / "srdata", w / "sr_fakejpg")
    (w / "sr_fakejpg/photo.jpg").write_text("<html>not an image</html>")
    (w / "sr_empty").mkdir()
    (w / "sr_notimg").mkdir()
    (w / "sr_notimg/readme.txt").write_text("no images here")
    (w / "fake.png").write_text("not a png")
    (w / "uni dír ø").mkdir()
    (w / "atomC").mkdir()
    inter = "".join(f"{u}\t{i}\t{u * 100 + i}\n" for u in range(30) for i in range(30))
    (w / "atomC/atomC.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + inter)
    (w / "dupusers.txt").write_text(
        "".join(
            f"u{u % 3} " + " ".join(f"i{(u * 7 + k) % 40}" for k in range(6)) + "\n"
            for u in range(30)
        )
    )
    (w / "csv_missing").mkdir()
    (w / "csv_missing/labels.csv").write_text(
        "path,group\n/nowhere/bïld ü.png,0\n/nowhere/b.png,1\n"
    )
    np.savez(w / "len.npz", train_images=imgs * 0, test_images=imgs * 0,
             train_groups=groups[:10], test_groups=groups)  # fmt: skip
    nan = imgs.copy()
    nan[2, 5, 5] = np.nan
    np.savez(w / "nan.npz", train_images=nan, test_images=imgs, train_groups=groups,
             test_groups=groups)  # fmt: skip
    shutil.copytree(w / "run_sepclr", w / "run_badmarker")
    (w / "run_badmarker/.contrasuite.json").write_text("{broken")
    # two real tiny runs (a few CPU seconds each) for the cases that load weights first
    argv = ["sr", "train", "--data-dir", str(w / "srdata"), "--out", str(w / "sr_real"), *SRT]
    assert main([*argv, "--device", "cpu", "-q"]) == 0
    argv = ["prostate", "train", "--data-dir", str(w / "ph"), "--out", str(w / "pr_real"), *PT]
    assert main([*argv, "--model", "baseline", "--device", "cpu", "-q"]) == 0
    shutil.copytree(w / "sr_real", w / "sr_swapped")
    shutil.copy(w / "pr_real/weights.pt", w / "sr_swapped/weights.pt")
    shutil.copytree(w / "pr_real", w / "pr_swapped")
    shutil.copy(w / "sr_real/weights.pt", w / "pr_swapped/weights.pt")


CASES: dict[str, tuple[list[str], list[str]]] = {
    # the config layer: YAML files and key=value settings
    "yaml with a list at the top": (
        ["digits", "train", "--out", OUT, "--config", "{W}/list.yaml", *DIG],
        ["list.yaml", "mapping"],
    ),
    "yaml syntax error": (
        ["sepclr", "train", "--out", OUT, "--config", "{W}/syntax.yaml", *SEP],
        ["syntax.yaml", "line 2"],
    ),
    "yaml value of the wrong type": (
        ["sr", "train", "--out", OUT, "--config", "{W}/wrongtype.yaml", *SRT],
        ["wrongtype.yaml", "trainer.epochs", "integer"],
    ),
    "yaml unknown key": (
        ["prostate", "train", "--out", OUT, "--config", "{W}/unknown.yaml", *PT],
        ["unknown.yaml", "trainer.lrr", "trainer.lr"],
    ),
    "yaml holding a number": (
        ["ecg", "train", "--data-dir", "{W}/ecg", "--out", OUT, "--config", "{W}/scalar.yaml"],
        ["scalar.yaml", "mapping"],
    ),
    "yaml path is a folder": (
        ["digits", "train", "--out", OUT, "--config", "{W}/dir.yaml", *DIG],
        ["dir.yaml", "directory"],
    ),
    "yaml not utf-8": (
        [
            "recsys",
            "evaluate",
            "--dataset",
            "ml-100k",
            "--out",
            OUT,
            "--config",
            "{W}/binary.yaml",
            *REC,
        ],
        ["binary.yaml", "utf-8"],
    ),
    "yaml missing, unicode name": (
        ["sepclr", "train", "--out", OUT, "--config", "{W}/nope ü.yaml", *SEP],
        ["nope ü.yaml", "does not exist"],
    ),
    "--epochs 0": (["digits", "train", "--out", OUT, *DIG, "--epochs", "0"], ["--epochs", "'0'"]),
    "--epochs -2": (["sr", "train", "--out", OUT, *SRT, "--epochs", "-2"], ["--epochs", "'-2'"]),
    "key=value with an empty key": (["digits", "train", "--out", OUT, *DIG, "=5"], ["'=5'"]),
    "float for an integer key": (
        ["digits", "train", "--out", OUT, *DIG, "model.width=2.5"],
        ["model.width", "integer"],
    ),
    "unknown device value": (
        ["digits", "train", "--out", OUT, *DIG, "trainer.device=tpu"],
        ["trainer.device", "'tpu'"],
    ),
    "negative batch size": (
        ["digits", "train", "--out", OUT, *DIG, "batch_size=-5"],
        ["batch_size", "-5"],
    ),
    "--lambda-jem nan": (
        ["sepclr", "train", "--out", OUT, *SEP, "--lambda-jem", "nan"],
        ["lambda_jem", "'nan'"],
    ),
    "--methods unknown: the message names the option": (
        ["digits", "train", "--out", OUT, *DIG, "--methods", "simclr,foo"],
        ["--methods simclr,foo:", "'foo'"],
    ),
    "--beta-s negative: the message names the option": (
        ["sepclr", "train", "--out", OUT, *SEP, "--beta-s", "-1"],
        ["--beta-s -1:", ">= 0"],
    ),
    "negative temperature": (
        ["sepclr", "train", "--out", OUT, *SEP, "loss.temperature=-0.1"],
        ["loss.temperature", "> 0"],
    ),
    "unknown encoder": (
        ["sepclr", "train", "--out", OUT, *SEP, "model.encoder=vgg99"],
        ["model.encoder", "'vgg99'"],
    ),
    "roi with two values": (
        ["prostate", "train", "--data-dir", "{W}/ph", "--out", OUT, *PT, "data.roi=16,16"],
        ["data.roi", "3 values"],
    ),
    "zero spacing": (
        ["prostate", "train", "--data-dir", "{W}/ph", "--out", OUT, *PT, "data.spacing=0,4,6"],
        ["data.spacing", "> 0"],
    ),
    "validation fraction above 1": (
        [
            "prostate",
            "train",
            "--data-dir",
            "{W}/ph",
            "--out",
            OUT,
            *PT,
            "data.val_fraction=1.5",
        ],
        ["data.val_fraction", "[0, 1)"],
    ),
    "blur sigma range inverted": (
        [
            "sr",
            "train",
            "--data-dir",
            "{W}/srdata",
            "--out",
            OUT,
            *SRT,
            "pcl.sigma_min=3",
            "pcl.sigma_max=1",
        ],
        ["sigma_min", "sigma_max"],
    ),
    "zero patch size": (
        ["sr", "train", "--data-dir", "{W}/srdata", "--out", OUT, *SRT, "data.patch_size=0"],
        ["data.patch_size", ">= 4"],
    ),
    "--scale 0": (
        ["sr", "train", "--data-dir", "{W}/srdata", "--out", OUT, *SRT, "--scale", "0"],
        ["scale", "2, 3 or 4"],
    ),
    "data.scale=7": (
        ["sr", "train", "--data-dir", "{W}/srdata", "--out", OUT, *SRT, "data.scale=7"],
        ["scale", "7", "2, 3 or 4"],
    ),
    "attention heads do not divide the width": (
        [
            "recsys",
            "evaluate",
            "--dataset",
            "ml-100k",
            "--out",
            OUT,
            *REC,
            "encoder.hidden_size=64",
            "encoder.n_heads=3",
        ],
        ["n_heads", "multiple"],
    ),
    "max_seq_length=0": (
        ["recsys", "evaluate", "--dataset", "ml-100k", "--out", OUT, *REC, "max_seq_length=0"],
        ["max_seq_length", ">= 2"],
    ),
    # --device cuda on a machine without CUDA
    "--device cuda (digits train)": (
        ["digits", "train", "--out", OUT, *DIG, "--device", "cuda"],
        ["--device cuda", "CUDA is not available"],
    ),
    "--device cuda (demo)": (
        ["demo", "--out", OUT, "--quick", "--steps", "digits", "--device", "cuda"],
        ["--device cuda", "CUDA is not available"],
    ),
    # demo, digits
    "demo --steps with no names": (["demo", "--out", OUT, "--steps", ","], ["demo steps", "','"]),
    "digits method misspelt": (
        ["digits", "train", "--out", OUT, *DIG, "--methods", "simclr,simclrr"],
        ["'simclrr'", "Did you mean 'simclr'"],
    ),
    "digits --out is a prostate run": (
        ["digits", "train", "--out", "{W}/run_prostate", *DIG],
        ["run_prostate", "prostate train run"],
    ),
    "digits --out under a file": (
        ["digits", "train", "--out", "{W}/file.txt/run", *DIG],
        ["file.txt is a file"],
    ),
    # ECG
    "ecg synth --n-records 0": (
        ["ecg", "synth", "--out", OUT, "--n-records", "0"],
        ["--n-records", "integer >= 10", "got 0"],
    ),
    "ecg synth --out holds another data set": (
        ["ecg", "synth", "--out", "{W}/ph", "--n-records", "10"],
        ["--out {W}/ph", "holds other files"],
    ),
    "ecg train: empty ptbxl_database.csv": (
        ["ecg", "train", "--data-dir", "{W}/ecg_emptydb", "--out", OUT, *ECG],
        ["{W}/ecg_emptydb/ptbxl_database.csv", "expected a readable csv"],
    ),
    "ecg train: ptbxl_database.csv without rows": (
        ["ecg", "train", "--data-dir", "{W}/ecg_hdronly", "--out", OUT, *ECG],
        ["{W}/ecg_hdronly/ptbxl_database.csv", "no rows"],
    ),
    "ecg train: scp_statements.csv without its columns": (
        ["ecg", "train", "--data-dir", "{W}/ecg_scpnocol", "--out", OUT, *ECG],
        ["{W}/ecg_scpnocol/scp_statements.csv", "'diagnostic'", "missing"],
    ),
    "ecg train: garbage WFDB header": (
        ["ecg", "train", "--data-dir", "{W}/ecg_badhea", "--out", OUT, *ECG],
        ["00003_lr.hea", "ecg_id 3", "WFDB header"],
    ),
    "ecg train: truncated .dat": (
        ["ecg", "train", "--data-dir", "{W}/ecg_truncdat", "--out", OUT, *ECG],
        ["00003_lr.dat", "24000 bytes", "has 100", "truncated"],
    ),
    "ecg train: header format 24 for a 16-bit .dat": (
        ["ecg", "train", "--data-dir", "{W}/ecg_fmt24", "--out", OUT, *ECG],
        ["00003_lr.dat", "format 24", "has 24000"],
    ),
    "ecg train: records100/ missing": (
        ["ecg", "train", "--data-dir", "{W}/ecg_norecords", "--out", OUT, *ECG],
        ["ecg_norecords/records100/", "does not exist"],
    ),
    "ecg train --data-dir is a file": (
        ["ecg", "train", "--data-dir", "{W}/file.txt", "--out", OUT, *ECG],
        ["{W}/file.txt", "not a folder"],
    ),
    "ecg train --data-dir is an MSD folder": (
        ["ecg", "train", "--data-dir", "{W}/ph", "--out", OUT, *ECG],
        ["{W}/ph/", "PTB-XL", "does not exist"],
    ),
    "ecg evaluate --run of sepclr": (
        ["ecg", "evaluate", "--run", "{W}/run_sepclr"],
        ["{W}/run_sepclr holds a sepclr train run"],
    ),
    "ecg evaluate --bootstrap -5": (
        ["ecg", "evaluate", "--run", "{W}/run_ecg", "--bootstrap", "-5"],
        ["--bootstrap", "'-5'"],
    ),
    "ecg explain --top 0": (
        ["ecg", "explain", "--run", "{W}/run_ecg", "--ecg-id", "1", "--top", "0", "--out", OUT],
        ["--top", "'0'"],
    ),
    # recsys
    "recsys: empty text file": (
        ["recsys", "evaluate", "--dataset", "{W}/empty.txt", "--out", OUT, *REC],
        ["{W}/empty.txt", "empty"],
    ),
    "recsys: binary text file": (
        ["recsys", "evaluate", "--dataset", "{W}/binary.txt", "--out", OUT, *REC],
        ["{W}/binary.txt", "UTF-8"],
    ),
    "recsys: users without items": (
        ["recsys", "evaluate", "--dataset", "{W}/nousers.txt", "--out", OUT, *REC],
        ["{W}/nousers.txt, line 1", "without items"],
    ),
    "recsys: atomic folder without <name>.inter": (
        ["recsys", "evaluate", "--dataset", "{W}/atomA", "--out", OUT, *REC],
        ["atomA.inter", "other.inter"],
    ),
    "recsys: atomic file without user/item columns": (
        ["recsys", "evaluate", "--dataset", "{W}/atomB", "--out", OUT, *REC],
        ["{W}/atomB/atomB.inter, line 1", "user_id"],
    ),
    "recsys: unknown data set name": (
        ["recsys", "evaluate", "--dataset", "ml-1m", "--out", OUT, *REC],
        ["'ml-1m'", "Did you mean 'ml-100k'"],
    ),
    "recsys: empty model name": (
        [
            "recsys",
            "evaluate",
            "--dataset",
            "ml-100k",
            "--out",
            OUT,
            *REC,
            "--models",
            "GRU4Rec,,SASRec",
        ],
        ["models", "unknown model ''"],
    ),
    "recsys: a seed that is not a number": (
        ["recsys", "evaluate", "--dataset", "ml-100k", "--out", OUT, *REC, "--seeds", "1,a"],
        ["seeds", "'a'"],
    ),
    "recsys --out is the data set folder": (
        ["recsys", "evaluate", "--dataset", "{W}/atomC", "--out", "{W}/atomC", *REC],
        ["--out {W}/atomC", "not empty"],
    ),
    "recsys --dataset is an ECG run": (
        ["recsys", "evaluate", "--dataset", "{W}/run_ecg", "--out", OUT, *REC],
        ["{W}/run_ecg", "run_ecg.inter"],
    ),
    # prostate
    "prostate phantom --n-cases 0": (
        ["prostate", "phantom", "--out", OUT, "--n-cases", "0"],
        ["--n-cases", "'0'"],
    ),
    "prostate phantom --shape with two values": (
        ["prostate", "phantom", "--out", OUT, "--shape", "32,32"],
        ["--shape", "'32,32'"],
    ),
    "prostate phantom --spacing=-1,1,1": (
        ["prostate", "phantom", "--out", OUT, "--spacing=-1,1,1"],
        ["--spacing", "'-1,1,1'"],
    ),
    "prostate phantom --from-masks empty folder": (
        ["prostate", "phantom", "--out", OUT, "--from-masks", "{W}/masks_empty"],
        ["--from-masks {W}/masks_empty", "found none"],
    ),
    "prostate phantom --from-masks corrupt mask": (
        ["prostate", "phantom", "--out", OUT, "--from-masks", "{W}/masks_corrupt"],
        ["{W}/masks_corrupt/prostate_00.nii.gz", "NIfTI"],
    ),
    "prostate phantom --out holds a sepclr set": (
        ["prostate", "phantom", "--out", "{W}/csv_empty", "--n-cases", "1"],
        ["--out {W}/csv_empty", "holds other files"],
    ),
    "prostate train: dataset.json not JSON": (
        ["prostate", "train", "--data-dir", "{W}/pr_badjson", "--out", OUT, *PT],
        ["{W}/pr_badjson/dataset.json", "JSON"],
    ),
    "prostate train: truncated image": (
        ["prostate", "train", "--data-dir", "{W}/pr_truncimg", "--out", OUT, *PT],
        ["{W}/pr_truncimg/imagesTr/prostate_001.nii.gz", "NIfTI"],
    ),
    "prostate train: label of another shape": (
        ["prostate", "train", "--data-dir", "{W}/pr_shape", "--out", OUT, *PT],
        ["{W}/pr_shape/labelsTr/prostate_001.nii.gz", "(9, 9, 4)"],
    ),
    "prostate train: label value 7": (
        ["prostate", "train", "--data-dir", "{W}/pr_labels7", "--out", OUT, *PT],
        ["{W}/pr_labels7/labelsTr/prostate_001.nii.gz", "labels 0-4", "7"],
    ),
    "prostate train: images missing": (
        ["prostate", "train", "--data-dir", "{W}/pr_noimages", "--out", OUT, *PT],
        ["{W}/pr_noimages/imagesTr/prostate_000.nii.gz does not exist"],
    ),
    "prostate train: labelsTr missing": (
        ["prostate", "train", "--data-dir", "{W}/pr_nolabels", "--out", OUT, *PT],
        ["{W}/pr_nolabels/labelsTr/prostate_000.nii.gz does not exist"],
    ),
    "prostate train --data-dir is a PTB-XL folder": (
        ["prostate", "train", "--data-dir", "{W}/ecg", "--out", OUT, *PT],
        ["--data-dir {W}/ecg", "labelled cases"],
    ),
    "prostate train --out is its data folder": (
        ["prostate", "train", "--data-dir", "{W}/ph", "--out", "{W}/ph", *PT],
        ["--out {W}/ph", "holds no contrasuite run"],
    ),
    "prostate predict: corrupt NIfTI": (
        [
            "prostate",
            "predict",
            "--run",
            "{W}/run_prostate",
            "--input",
            "{W}/corrupt.nii.gz",
            "--out",
            OUT,
        ],
        ["{W}/corrupt.nii.gz", "NIfTI"],
    ),
    "prostate predict: .nii.gz holding text": (
        [
            "prostate",
            "predict",
            "--run",
            "{W}/run_prostate",
            "--input",
            "{W}/text.nii.gz",
            "--out",
            OUT,
        ],
        ["{W}/text.nii.gz", "not a gzip file"],
    ),
    "prostate predict: 2D image": (
        [
            "prostate",
            "predict",
            "--run",
            "{W}/run_prostate",
            "--input",
            "{W}/flat2d.nii.gz",
            "--out",
            OUT,
        ],
        ["{W}/flat2d.nii.gz", "3D image", "(16, 16)"],
    ),
    "prostate predict: a PNG": (
        [
            "prostate",
            "predict",
            "--run",
            "{W}/run_prostate",
            "--input",
            "{W}/scan.png",
            "--out",
            OUT,
        ],
        ["{W}/scan.png", "NIfTI"],
    ),
    "prostate predict --run of sr": (
        ["prostate", "predict", "--run", "{W}/run_sr", "--input", "{W}/predin", "--out", OUT],
        ["--run {W}/run_sr holds a sr train run"],
    ),
    "prostate predict --out under a file": (
        [
            "prostate",
            "predict",
            "--run",
            "{W}/pr_real",
            "--input",
            "{W}/predin",
            "--out",
            "{W}/file.txt/p",
        ],
        ["{W}/file.txt/p"],
    ),
    "prostate evaluate: no labels": (
        ["prostate", "evaluate", "--run", "{W}/pr_real", "--data-dir", "{W}/pr_nolabels"],
        ["{W}/pr_nolabels/labelsTr/prostate_000.nii.gz does not exist"],
    ),
    "prostate evaluate --data-dir is a file": (
        ["prostate", "evaluate", "--run", "{W}/pr_real", "--data-dir", "{W}/corrupt.nii.gz"],
        ["--data-dir {W}/corrupt.nii.gz"],
    ),
    "prostate evaluate --baseline of sepclr": (
        [
            "prostate",
            "evaluate",
            "--run",
            "{W}/pr_real",
            "--data-dir",
            "{W}/ph",
            "--baseline",
            "{W}/run_sepclr",
        ],
        ["--baseline {W}/run_sepclr holds a sepclr train run"],
    ),
    # sepclr
    "sepclr make-data --n-per-group 0": (
        ["sepclr", "make-data", "--out", OUT, "--n-per-group", "0"],
        ["--n-per-group", "'0'"],
    ),
    "sepclr make-data --size 3": (
        ["sepclr", "make-data", "--out", OUT, "--size", "3"],
        ["--size", ">= 16", "3"],
    ),
    "sepclr train: npz of 1-D images": (
        ["sepclr", "train", "--data", "{W}/wrongdim.npz", "--out", OUT, *SEP],
        ["wrongdim.npz:train_images", "(12,)"],
    ),
    "sepclr train: .txt data": (
        ["sepclr", "train", "--data", "{W}/data.txt", "--out", OUT, *SEP],
        ["--data {W}/data.txt", ".npz"],
    ),
    "sepclr train: CSV without a group column": (
        ["sepclr", "train", "--data", "{W}/csv_nogroup", "--out", OUT, *SEP],
        ["{W}/csv_nogroup/labels.csv", "path,label"],
    ),
    "sepclr train: CSV without rows": (
        ["sepclr", "train", "--data", "{W}/csv_empty", "--out", OUT, *SEP],
        ["{W}/csv_empty/labels.csv", "empty"],
    ),
    "sepclr train: CSV naming a corrupt PNG": (
        ["sepclr", "train", "--data", "{W}/csv_corruptpng", "--out", OUT, *SEP],
        ["{W}/csv_corruptpng/2.png", "line 4"],
    ),
    "sepclr train --data is an MSD folder": (
        ["sepclr", "train", "--data", "{W}/ph", "--out", OUT, *SEP],
        ["{W}/ph", "labels.csv"],
    ),
    "sepclr train --out is an sr run": (
        ["sepclr", "train", "--data", "{W}/good.npz", "--out", "{W}/run_sr", *SEP],
        ["--out {W}/run_sr holds a sr train run"],
    ),
    "sepclr evaluate --run of sr": (
        ["sepclr", "evaluate", "--run", "{W}/run_sr"],
        ["--run {W}/run_sr holds a sr train run"],
    ),
    "sepclr evaluate --compare a prostate run": (
        ["sepclr", "evaluate", "--run", "{W}/run_sepclr", "--compare", "{W}/run_prostate"],
        ["--compare {W}/run_prostate holds a prostate train run"],
    ),
    "sepclr evaluate --run is a file": (
        ["sepclr", "evaluate", "--run", "{W}/run_sepclr/weights.pt"],
        ["--run {W}/run_sepclr/weights.pt", "is a file"],
    ),
    "sepclr train: groups of another length": (
        ["sepclr", "train", "--data", "{W}/len.npz", "--out", OUT, *SEP],
        ["len.npz:train_groups", "(12)", "has 10"],
    ),
    "sepclr train: NaN in the images": (
        ["sepclr", "train", "--data", "{W}/nan.npz", "--out", OUT, *SEP],
        ["nan.npz:train_images", "finite"],
    ),
    "sepclr train: CSV naming a missing unicode file": (
        ["sepclr", "train", "--data", "{W}/csv_missing", "--out", OUT, *SEP],
        ["{W}/csv_missing/labels.csv line 2", "/nowhere/bïld ü.png", "does not exist"],
    ),
    "sepclr evaluate --compare a missing folder": (
        ["sepclr", "evaluate", "--run", "{W}/run_sepclr", "--compare", "{W}/nöne"],
        ["--compare {W}/nöne", "does not exist"],
    ),
    "sepclr evaluate: corrupt run marker": (
        ["sepclr", "evaluate", "--run", "{W}/run_badmarker"],
        ["--run {W}/run_badmarker", ".contrasuite.json is corrupt"],
    ),
    "recsys: one user on two lines": (
        ["recsys", "evaluate", "--dataset", "{W}/dupusers.txt", "--out", OUT, *REC],
        ["{W}/dupusers.txt, line 4", "'u0'", "one line per user"],
    ),
    "recsys topk=0": (
        ["recsys", "evaluate", "--dataset", "ml-100k", "--out", OUT, *REC, "topk=0"],
        ["topk", ">= 1"],
    ),
    "recsys --out is an sr run": (
        ["recsys", "evaluate", "--dataset", "ml-100k", "--out", "{W}/run_sr", *REC],
        ["--out {W}/run_sr holds a sr train run"],
    ),
    "digits trainer.amp=maybe": (
        ["digits", "train", "--out", OUT, *DIG, "trainer.amp=maybe"],
        ["trainer.amp", "true or false", "'maybe'"],
    ),
    "digits --out is a file": (
        ["digits", "train", "--out", "{W}/file.txt", *DIG],
        ["--out {W}/file.txt", "it is a file"],
    ),
    "ecg explain --run is a file": (
        ["ecg", "explain", "--run", "{W}/file.txt", "--ecg-id", "1", "--out", OUT],
        ["--run {W}/file.txt", "it is a file"],
    ),
    "prostate predict: missing unicode input": (
        [
            "prostate",
            "predict",
            "--run",
            "{W}/pr_real",
            "--input",
            "{W}/nö file.nii.gz",
            "--out",
            OUT,
        ],
        ["--input {W}/nö file.nii.gz", "does not exist"],
    ),
    "prostate predict: empty input folder": (
        ["prostate", "predict", "--run", "{W}/pr_real", "--input", "{W}/sr_empty", "--out", OUT],
        ["--input {W}/sr_empty", "found none"],
    ),
    "prostate evaluate: label value 7": (
        ["prostate", "evaluate", "--run", "{W}/pr_real", "--data-dir", "{W}/pr_labels7"],
        ["{W}/pr_labels7/labelsTr/prostate_001.nii.gz", "labels 0-4"],
    ),
    "prostate predict: weights.pt of another run": (
        ["prostate", "predict", "--run", "{W}/pr_swapped", "--input", "{W}/predin", "--out", OUT],
        ["{W}/pr_swapped/weights.pt", "another run", "copy whole run folders"],
    ),
    # sr
    "sr upscale --model gan": (
        [
            "sr",
            "upscale",
            "--run",
            "{W}/sr_real",
            "--input",
            "{W}/srdata/s0.png",
            "--out",
            OUT,
            "--model",
            "gan",
        ],
        ["--model", "'gan'"],
    ),
    "sr evaluate --run missing, unicode": (
        ["sr", "evaluate", "--run", "{W}/nö run", "--data-dir", "{W}/srdata"],
        ["--run {W}/nö run", "does not exist"],
    ),
    "sr train: a .jpg that is HTML": (
        ["sr", "train", "--data-dir", "{W}/sr_fakejpg", "--out", OUT, *SRT],
        ["{W}/sr_fakejpg/photo.jpg", "PNG/JPEG"],
    ),
    "sr train: folder without images": (
        ["sr", "train", "--data-dir", "{W}/sr_notimg", "--out", OUT, *SRT],
        ["--data-dir {W}/sr_notimg", "PNG/JPEG"],
    ),
    "sr train --data-dir is an image": (
        ["sr", "train", "--data-dir", "{W}/srdata/s0.png", "--out", OUT, *SRT],
        ["--data-dir {W}/srdata/s0.png", "folder"],
    ),
    "sr train --out is a sepclr run": (
        ["sr", "train", "--data-dir", "{W}/srdata", "--out", "{W}/run_sepclr", *SRT],
        ["--out {W}/run_sepclr holds a sepclr train run"],
    ),
    "sr upscale: a .png holding text": (
        ["sr", "upscale", "--run", "{W}/sr_real", "--input", "{W}/fake.png", "--out", OUT],
        ["{W}/fake.png", "PNG/JPEG"],
    ),
    "sr upscale: missing unicode path": (
        [
            "sr",
            "upscale",
            "--run",
            "{W}/sr_real",
            "--input",
            "{W}/uni dír ø/nope é.png",
            "--out",
            OUT,
        ],
        ["--input {W}/uni dír ø/nope é.png", "no such file"],
    ),
    "sr upscale: empty folder": (
        ["sr", "upscale", "--run", "{W}/sr_real", "--input", "{W}/sr_empty", "--out", OUT],
        ["--input {W}/sr_empty", "holds none"],
    ),
    "sr upscale --tile -5": (
        [
            "sr",
            "upscale",
            "--run",
            "{W}/run_sr",
            "--input",
            "{W}/srdata/s0.png",
            "--out",
            OUT,
            "--tile",
            "-5",
        ],
        ["--tile -5"],
    ),
    "sr upscale: a NIfTI": (
        [
            "sr",
            "upscale",
            "--run",
            "{W}/sr_real",
            "--input",
            "{W}/predin/case.nii.gz",
            "--out",
            OUT,
        ],
        ["--input {W}/predin/case.nii.gz", "image file"],
    ),
    "sr upscale --run of prostate": (
        [
            "sr",
            "upscale",
            "--run",
            "{W}/run_prostate",
            "--input",
            "{W}/srdata/s0.png",
            "--out",
            OUT,
        ],
        ["--run {W}/run_prostate holds a prostate train run"],
    ),
    "sr upscale: weights.pt of another run": (
        ["sr", "upscale", "--run", "{W}/sr_swapped", "--input", "{W}/srdata/s0.png", "--out", OUT],
        ["{W}/sr_swapped/weights.pt", "another run"],
    ),
    "--device cuda (sr upscale)": (
        [
            "sr",
            "upscale",
            "--run",
            "{W}/sr_real",
            "--input",
            "{W}/srdata/s0.png",
            "--out",
            OUT,
            "--device",
            "cuda",
        ],
        ["--device cuda", "CUDA is not available"],
    ),
    "sr evaluate: folder without images": (
        ["sr", "evaluate", "--run", "{W}/sr_real", "--data-dir", "{W}/sr_notimg"],
        ["--data-dir {W}/sr_notimg", "found none"],
    ),
    "sr evaluate --run of ecg": (
        ["sr", "evaluate", "--run", "{W}/run_ecg", "--data-dir", "{W}/srdata"],
        ["--run {W}/run_ecg holds an ecg train run"],
    ),
    "sr evaluate: a .jpg that is HTML": (
        ["sr", "evaluate", "--run", "{W}/sr_real", "--data-dir", "{W}/sr_fakejpg"],
        ["{W}/sr_fakejpg/photo.jpg", "PNG/JPEG"],
    ),
}


def _tree(root: Path) -> dict[str, str]:
    snap: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            snap[os.path.join(dirpath, d)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            snap[p] = hashlib.md5(Path(p).read_bytes()).hexdigest()
    return snap


def _terminal_lines(text: str) -> list[str]:
    """The lines a terminal keeps (a progress bar redrawn with ``\\r``: its last state)."""
    lines = [line.split("\r")[-1] for line in text.split("\n")]
    return [line for line in lines if line.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hunt") / "wörld dir"  # a space and a non-ASCII letter
    _build(root)
    yield root
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_true_line_and_changes_nothing(
    name: str, world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template, fragments = CASES[name]
    argv = [a.replace("{W}", str(world)) for a in template]
    out = Path(OUT.replace("{W}", str(world)))
    before = _tree(world)
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    lines = _terminal_lines(captured.err)
    assert status == 2, (name, captured.err[-2000:])
    assert len(lines) == 1, (name, lines)
    assert "Traceback" not in captured.err
    assert lines[0].startswith("contrasuite: error: "), lines
    for fragment in fragments:
        assert fragment.replace("{W}", str(world)) in lines[0], (name, fragment, lines[0])
    assert not out.exists(), name
    assert _tree(world) == before, name
