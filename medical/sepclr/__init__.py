"""SepCLR: common vs salient spaces by contrastive learning (Louiset et al., ICLR 2024).

Light on purpose (the command line imports :mod:`medical.sepclr.domain` through it): the
library lives in the submodules ``config``, ``data``, ``synth``, ``augment``, ``model``,
``losses``, ``tasks``, ``baselines``, ``evaluate``, ``report``, ``train`` and ``commands``.
"""
