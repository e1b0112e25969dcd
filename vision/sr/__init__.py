"""PCL-SR: contrastive single-image super-resolution (Wu, Jiang, Liu; IEEE TNNLS 2023).

An EDSR network trained with L1, then fine-tuned with L1 + the PCL InfoNCE term in the feature
space of an online-trained high-frequency discriminator, beside an L1-only control fine-tuned
from the same checkpoint on the same schedule. Modules:

* :mod:`vision.sr.imaging`: image files, MATLAB-style bicubic resizing, the bundled images.
* :mod:`vision.sr.data`: the in-memory image store and the random patch dataset.
* :mod:`vision.sr.model`: EDSR, the Haar DWT and the patch discriminator.
* :mod:`vision.sr.degrade`: sharpened positives and blurred negatives.
* :mod:`vision.sr.losses`: the PCL InfoNCE and the discriminator's dual contrastive loss.
* :mod:`vision.sr.tasks`, :mod:`vision.sr.train`: the Tasks and the three training stages.
* :mod:`vision.sr.metrics`, :mod:`vision.sr.infer`, :mod:`vision.sr.evaluate`: PSNR/SSIM,
  tiled upscaling, the evaluation of a run.

This ``__init__`` imports nothing, so that :mod:`vision.sr.domain` stays light.
"""
