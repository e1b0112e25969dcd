r"""Baselines of the probe table: contrastive PCA and a contrastive VAE.

* **cPCA** (Abid, Zhang, Bagaria, Zou, Nature Communications 2018): the salient directions are
  the top-k eigenvectors of :math:`C_{target} - \alpha C_{background}` (pixel covariances, each
  group centred on its own mean); one fixed ``alpha`` (the paper scans several and inspects
  them). For the ``common`` space of the table we use the top-k principal directions of the
  background (what the background varies along, hence what both groups share).
* **Contrastive VAE** (Abid & Zou, "Contrastive Variational Autoencoder Enhances Salient
  Features", arXiv 1902.04601, 2019): two encoders :math:`q(z|x)` (irrelevant/common) and
  :math:`q(s|x)` (salient), one decoder. A target image is reconstructed from
  :math:`(z, s)`, a background image from :math:`(z, 0)`; the loss is the negative ELBO
  (Bernoulli likelihood, standard normal priors). The optional total-correlation
  discriminator of the paper is not used. The probes read the posterior means.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medical.sepclr.model import SmallCNN

__all__ = ["CPCA", "ContrastiveVAE"]


class CPCA:
    """Contrastive PCA (salient space) with background PCA as the common space.

    Args:
        n_components: k, the dimension of each space.
        alpha: Contrast strength (>= 0).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> bg = rng.normal(size=(300, 5)) * [4, 1, 1, 1, 1]  # large shared variance on 0
        >>> tg = rng.normal(size=(300, 5)) * [4, 1, 1, 3, 1]  # and extra variance on 3
        >>> m = CPCA(1, alpha=1.0).fit(tg, bg)
        >>> int(np.abs(m.salient_axes[:, 0]).argmax()), int(np.abs(m.common_axes[:, 0]).argmax())
        (3, 0)
    """

    def __init__(self, n_components: int, alpha: float = 1.0) -> None:
        if n_components < 1:
            raise ValueError(f"Expected `n_components` >= 1, but got {n_components}.")
        if alpha < 0:
            raise ValueError(f"Expected `alpha` >= 0, but got {alpha}.")
        self.k, self.alpha = n_components, alpha

    def fit(self, target: np.ndarray, background: np.ndarray) -> CPCA:
        """Fit on flattened target and background samples.

        Args:
            target: Shape: (N_t, P), float.
            background: Shape: (N_b, P), float.

        Returns:
            self.
        """
        t = target.astype(np.float64)
        b = background.astype(np.float64)
        self.mean_ = np.concatenate([t, b]).mean(axis=0)
        ct = np.cov(t, rowvar=False)
        cb = np.cov(b, rowvar=False)
        k = min(self.k, t.shape[1])
        w, v = np.linalg.eigh(ct - self.alpha * cb)
        self.salient_axes = v[:, np.argsort(w)[::-1][:k]]
        w, v = np.linalg.eigh(cb)
        self.common_axes = v[:, np.argsort(w)[::-1][:k]]
        return self

    def transform(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Project samples. Shape: (N, P) -> ``{"common": (N, k), "salient": (N, k)}``."""
        xc = x.astype(np.float64) - self.mean_
        return {"common": xc @ self.common_axes, "salient": xc @ self.salient_axes}

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors to save in ``weights.pt``."""
        return {
            "mean": torch.from_numpy(self.mean_),
            "common_axes": torch.from_numpy(self.common_axes),
            "salient_axes": torch.from_numpy(self.salient_axes),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore from :meth:`state_dict`."""
        self.mean_ = state["mean"].numpy()
        self.common_axes = state["common_axes"].numpy()
        self.salient_axes = state["salient_axes"].numpy()


class _GaussianEncoder(nn.Module):
    def __init__(self, in_channels: int, width: int, dim: int) -> None:
        super().__init__()
        self.cnn = SmallCNN(in_channels, width)
        self.out = nn.Linear(self.cnn.num_features, 2 * dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.out(self.cnn.forward_features(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)


def _kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per sample. Shape: (B, D) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


class ContrastiveVAE(nn.Module):
    """Contrastive VAE (Abid & Zou 2019) with small-CNN encoders and an MLP decoder.

    Args:
        image_shape: (C, H, W) of the inputs.
        common_dim: Dimension of z.
        salient_dim: Dimension of s.
        width: Width of the encoders' small CNN.
        hidden: Hidden width of the decoder MLP.
        beta: Weight of the KL terms.

    Shape:
        - Input: (B, C, H, W) in [0, 1].

    Examples:
        >>> vae = ContrastiveVAE((1, 16, 16), 4, 3, width=4, hidden=16)
        >>> out = vae.loss(torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 0, 1]).bool())
        >>> sorted(out)[:3]
        ['loss', 'loss/kl_common', 'loss/kl_salient']
    """

    spaces = ("common", "salient")

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        common_dim: int,
        salient_dim: int,
        width: int = 32,
        hidden: int = 256,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = image_shape
        self.z_enc = _GaussianEncoder(c, width, common_dim)
        self.s_enc = _GaussianEncoder(c, width, salient_dim)
        self.decoder = nn.Sequential(
            nn.Linear(common_dim + salient_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, c * h * w),
        )
        self.beta = beta

    def loss(self, x: Tensor, is_target: Tensor) -> dict[str, Tensor]:
        """Negative ELBO (per image, averaged over the batch), by part.

        Args:
            x: Shape: (B, C, H, W), float in [0, 1].
            is_target: Shape: (B,), bool.

        Returns:
            ``{"loss", "loss/recon", "loss/kl_common", "loss/kl_salient"}``.
        """
        mu_z, lv_z = self.z_enc(x)
        mu_s, lv_s = self.s_enc(x)
        z = mu_z + torch.randn_like(mu_z) * (0.5 * lv_z).exp()
        s = mu_s + torch.randn_like(mu_s) * (0.5 * lv_s).exp()
        tg = is_target.to(x.dtype)[:, None]
        logits = self.decoder(torch.cat([z, s * tg], dim=1))
        recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(
            dim=1
        )
        kl_z = _kl(mu_z, lv_z)
        kl_s = _kl(mu_s, lv_s) * tg[:, 0]
        total = (recon + self.beta * (kl_z + kl_s)).mean()
        return {
            "loss": total,
            "loss/recon": recon.mean().detach(),
            "loss/kl_common": kl_z.mean().detach(),
            "loss/kl_salient": kl_s.mean().detach(),
        }

    @torch.no_grad()
    def features(self, x: Tensor) -> dict[str, dict[str, Tensor]]:
        """Posterior means: ``{"common": {"rep", "head"}, "salient": {...}}`` (rep = head)."""
        mu_z, _ = self.z_enc(x)
        mu_s, _ = self.s_enc(x)
        return {"common": {"rep": mu_z, "head": mu_z}, "salient": {"rep": mu_s, "head": mu_s}}
