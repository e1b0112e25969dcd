"""The ``contrasuite sr`` command group and demo step (light: imports only shared.domain)."""

from __future__ import annotations

from shared.domain import CommandSpec, DomainSpec, Option, device_option, run_option

__all__ = ["DOMAIN"]

_TRAIN_DESC = """\
PCL-SR (Wu, Jiang, Liu; IEEE TNNLS 2023) on EDSR, in three stages of one run folder:
  pretrain  L1 from scratch (pretrain.epochs, pretrain.lr)
  pcl       fine-tune with L1 + pcl.weight * PCL (InfoNCE in the feature space of an
            online-trained Haar high-frequency discriminator; positives: HR and sharpened HR,
            negatives: bicubic-upsampled LR and blurred HR)
  l1        the control: fine-tune with L1 only, same start, seed, schedule and patches
--epochs and trainer.* set each fine-tuning. pcl.grad_to_sr=false reproduces the released
code, whose contrastive term never reached the network. Without --data-dir the training
images are scikit-image's bundled natural images (no download).

Several GPUs or machines: run the same command under torchrun (DDP, one process per
GPU; gloo on CPU). data.batch_size is per process and each process draws its share of
an epoch's patches; the discriminator learns from every process's batch; rank 0 alone
writes OUT. BatchNorm statistics (the discriminator's) are per process."""

DOMAIN = DomainSpec(
    name="sr",
    help="PCL-SR contrastive super-resolution (EDSR): train, upscale, evaluate",
    description=(
        "Single-image super-resolution with the PCL contrastive term, always beside an "
        "L1-only control fine-tuned on the identical schedule."
    ),
    commands=(
        CommandSpec(
            name="train",
            help="EDSR: L1 pretraining, then L1 + PCL and the L1-only control from it",
            description=_TRAIN_DESC,
            examples=(
                "contrasuite sr train --out runs/sr --epochs 10\n"
                "contrasuite sr train --data-dir DIV2K_HR --out runs/sr4 --scale 4 "
                "model.size=baseline\n"
                "contrasuite sr train --out runs/sr-released pcl.grad_to_sr=false\n"
                "torchrun --nproc_per_node 2 -m pipelines sr train --data-dir DIV2K_HR "
                "--out runs/ddp"
            ),
            run="vision.sr.commands:train",
            config="vision.sr.config:SRConfig",
            options=(
                Option(
                    ("--data-dir",),
                    help="folder of PNG/JPEG training images (default: scikit-image's bundled "
                    "natural images)",
                    key="data.dir",
                    kwargs={"metavar": "DIR"},
                ),
                Option(
                    ("--scale",),
                    help="super-resolution scale: 2, 3 or 4 (default 2)",
                    key="data.scale",
                    kwargs={"type": int, "metavar": "S"},
                ),
                Option(
                    ("--size",),
                    help="EDSR size: tiny, small, baseline (16 blocks, 64 channels; default) "
                    "or large",
                    key="model.size",
                    kwargs={"choices": ("tiny", "small", "baseline", "large")},
                ),
            ),
        ),
        CommandSpec(
            name="upscale",
            help="super-resolve images (tiled for large ones) with a trained run",
            description=(
                "Write one PNG per input image, NAME_x<scale>_<model>.png, super-resolved by "
                "the run's PCL (default) or L1-only network. Large images are processed in "
                "tiles with overlapping context, so memory stays bounded."
            ),
            examples=(
                "contrasuite sr upscale --run runs/sr --input photo.jpg --out up/\n"
                "contrasuite sr upscale --run runs/sr --input ../shared/data/sr/Set5 "
                "--out up/ --model l1"
            ),
            run="vision.sr.commands:upscale",
            options=(
                run_option("a finished sr train run folder"),
                Option(
                    ("--input",),
                    help="an image file or a folder of images",
                    kwargs={"required": True, "metavar": "FILE_OR_DIR"},
                ),
                Option(
                    ("--out",),
                    help="folder for the PNGs (created)",
                    kwargs={"required": True, "metavar": "DIR"},
                ),
                Option(
                    ("--model",),
                    help="which network (default pcl)",
                    kwargs={"choices": ("pcl", "l1"), "default": "pcl"},
                ),
                Option(
                    ("--tile",),
                    help="LR tile side in pixels (default 128; 0: whole image)",
                    kwargs={"type": int, "default": 128, "metavar": "N"},
                ),
                device_option(),
            ),
        ),
        CommandSpec(
            name="evaluate",
            help="Y/RGB PSNR and SSIM of bicubic, L1-only and PCL on folders of HR images",
            description=(
                "Measure the run's networks and bicubic on every image of DIR (a folder of HR "
                "images, or of such folders, one per set, e.g. ../shared/data/sr with Set5 "
                "and Set14): PSNR/SSIM on Y (BT.601) and RGB, border = scale. Writes "
                "RUN/metrics.json (sets, per_image, scale) and RUN/results.md; sets evaluated "
                "earlier from another folder are kept (a set of the same name is replaced). "
                "With --out, they go to that folder instead (with log.txt and config.yaml; sets "
                "kept from its earlier evaluations), and RUN is only read."
            ),
            examples="contrasuite sr evaluate --run runs/sr --data-dir ../shared/data/sr\n"
            "contrasuite sr evaluate --run runs/sr --data-dir ../shared/data/sr --out evals/sr",
            run="vision.sr.commands:evaluate",
            config="vision.sr.config:SREvaluateConfig",
            out_required=False,
            out_help="folder for metrics.json, results.md, log.txt and config.yaml (created; "
            "RUN is only read, so it may be read-only); default: RUN",
            common_help={
                "seed": "recorded in config.yaml only: this evaluation draws no random numbers "
                "(bicubic LR images, deterministic networks and metrics), so it has no effect "
                "(default: 2020)",
                "device": "where the networks run: cpu, cuda, or auto = cuda when available "
                "(default: auto)",
                "epochs": "not used: evaluate trains nothing (an error; the training epochs are "
                "set at `sr train`)",
                "print_config": "print the resolved settings as YAML and exit (nothing is read, "
                "evaluated or written)",
                "overrides": "set any evaluation setting, e.g. device=cpu (keys below; an "
                "unknown key is an error naming the closest valid one)",
            },
            option_keys={"seed": "seed", "device": "device"},
            options=(
                run_option("a finished sr train run folder"),
                Option(
                    ("--data-dir",),
                    help="folder of HR images, or of set folders",
                    key="data_dir",
                    kwargs={"required": True, "metavar": "DIR"},
                ),
            ),
        ),
    ),
    demo="vision.sr.commands:demo_step",
    demo_title="Super-resolution x2: bicubic vs L1-only vs L1 + PCL (EDSR-tiny, bundled images)",
)
