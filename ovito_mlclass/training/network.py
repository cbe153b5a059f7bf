"""The classifier networks.

- :class:`StructureNet`, feed-forward (Geiger & Dellago, J. Chem. Phys. 139, 164105 (2013); Rogal
  et al., Phys. Rev. Lett. 123, 245701 (2019)): standardised descriptors -> hidden layers -> class
  logits, with an optional second head for a per-atom site label (Frank–Kasper coordination), and a
  novelty score: how unlike the training atoms of its predicted class an atom is, from
  class-conditional Gaussians of the standardised descriptors (Mahalanobis distances, as DC3's
  outlier detection works in the descriptor space), each scaled so that 1 is its threshold. The
  descriptors, not a hidden layer: a layer trained to tell the classes apart maps structures of no
  class into the class regions.
- :class:`PointNet` (Qi et al., CVPR 2017, as used for crystal structures by DeFever et al., Chem.
  Sci. 10, 7503 (2019)): the scaled vectors to an atom's N nearest neighbours (the ``point_cloud``
  feature block) -> one small MLP applied to every point -> max over the points -> MLP head.

Written so that ``torch.jit.script`` accepts them; everything the input needs (standardisation,
reshaping) is inside the module, so the saved file needs nothing else. ``StructureNet`` returns
``(class logits, site logits, novelty)``, ``PointNet`` ``(class logits, site logits)``.
"""
from __future__ import annotations

from typing import List, Tuple

import torch


class StructureNet(torch.nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden: List[int], n_sites: int = 0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("inv_std", torch.ones(n_features))
        layers: List[torch.nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.SiLU()]
            width = h
        self.body = torch.nn.Sequential(*layers)
        self.classes = torch.nn.Linear(width, n_classes)
        self.n_sites = n_sites
        self.sites = torch.nn.Linear(width, max(n_sites, 1))
        # novelty (set_novelty): per class the mean of the standardised descriptors z, a factor L of
        # the inverse covariance (d^2 = |(z - mean) L|^2) and 1/threshold; all zero: novelty 0
        self.register_buffer("novelty_means", torch.zeros(n_classes, n_features))
        self.register_buffer("novelty_factors", torch.zeros(n_classes, n_features, n_features))
        self.register_buffer("novelty_scales", torch.zeros(n_classes))

    def set_standardisation(self, mean, std) -> None:
        std = torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-8)  # constant features stay finite
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.inv_std.copy_(1.0 / std)

    def set_novelty(self, means, factors, thresholds) -> None:
        """Per class: mean and inverse-covariance factor of the standardised descriptors, and the
        squared distance that scores 1 (see :func:`ovito_mlclass.training.train.fit_novelty`)."""
        self.novelty_means.copy_(torch.as_tensor(means, dtype=torch.float32))
        self.novelty_factors.copy_(torch.as_tensor(factors, dtype=torch.float32))
        self.novelty_scales.copy_(1.0 / torch.as_tensor(thresholds, dtype=torch.float32))

    @torch.jit.export
    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """The descriptors as the network and the novelty see them."""
        return (x - self.mean) * self.inv_std

    @torch.jit.export
    def novelty(self, z: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
        """d_c^2(z) / threshold_c of standardised descriptors z to the class c the network predicts:
        below 1 for an atom like its class's training atoms, above for one unlike them. One class
        at a time: the distance to every class would cost as many times more."""
        out = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for c in range(self.novelty_means.shape[0]):
            rows = (predicted == c).nonzero().squeeze(1)
            if rows.numel() > 0:
                y = (z[rows] - self.novelty_means[c]) @ self.novelty_factors[c]
                out[rows] = (y * y).sum(dim=1) * self.novelty_scales[c]
        return out

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.standardised(x)
        h = self.body(z)
        logits = self.classes(h)
        sites = self.sites(h)
        return logits, sites[:, : self.n_sites], self.novelty(z, logits.argmax(dim=1))


class PointNet(torch.nn.Module):
    """Input ``(n, 3 * n_points)``: per atom the neighbour vectors x1, y1, z1, x2, ... in units of
    its nearest-neighbour distance. Each point enters the shared MLP as (x, y, z, |r|): the length
    is a function of the point, so the network stays a PointNet, but it need not learn |r| from
    rotated copies. The maximum over points makes the output exactly invariant to the order of the
    neighbours; rotation invariance is learnt (random rotations in training), helped, with
    ``align_radius > 0``, by a fixed input alignment (:meth:`frame`, in place of PointNet's learnt
    T-Net). Kept small for CPU inference: the per-point MLP is almost all of the cost (about
    40 x 6k multiply-adds per atom for N = 40 and widths 32, 64, 64). DeFever et al. used widths
    64, 64, 64, 128, 1024 and a 512, 256 head with batch norm, trained for hours on a GPU.

    ``forward`` = ``classify(embed(x))``, one atom's cloud at a time. A model whose metadata set
    ``neighbor_average = k`` instead averages :meth:`embed` over each atom and its k nearest
    neighbours before :meth:`classify` (``StructureModel.predict``; Lechner & Dellago's averaging,
    applied to the learnt feature instead of q_lm): near melting one atom's cloud is too noisy, the
    average over 13 is not."""

    def __init__(self, n_points: int, n_classes: int, point_widths: List[int], head: List[int],
                 align_radius: float = 0.0):
        super().__init__()
        self.n_points = n_points
        self.align_radius = align_radius
        # the first layer on (x, y, z, |r|) on its own: embed folds the alignment into it
        self.first = torch.nn.Linear(4, point_widths[0])
        layers: List[torch.nn.Module] = [torch.nn.ReLU()]
        width = point_widths[0]
        for h in point_widths[1:]:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        self.points = torch.nn.Sequential(*layers)
        layers = []
        for h in head:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        self.head = torch.nn.Sequential(*layers)
        self.classes = torch.nn.Linear(width, n_classes)

    def frame(self, points: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """Every cloud's own frame, ``(n, 3, 3)`` with columns e1, e2, e3: e1 towards the nearest
        point, e2 towards the point within ``align_radius`` most nearly perpendicular to e1 (the
        first shell: a crystal's frames then come in a few symmetry-related kinds, not all of SO(3)),
        e3 = e1 x e2. Depends only on the set of points, so rotating the input rotates the frame with
        it: the output is invariant except where ties between equidistant points (ideal lattices)
        pick another, equivalent frame."""
        rows = torch.arange(points.shape[0])
        tiny = 1e-12
        e1 = points[rows, length.argmin(dim=1)]
        e1 = e1 / torch.sqrt((e1 * e1).sum(dim=1, keepdim=True)).clamp_min(tiny)
        cosine = (points * e1.unsqueeze(1)).sum(dim=2) / length.clamp_min(tiny)
        score = cosine.abs() + 2.0 * (length > self.align_radius).to(points.dtype)
        v = points[rows, score.argmin(dim=1)]
        e2 = v - (v * e1).sum(dim=1, keepdim=True) * e1
        e2 = e2 / torch.sqrt((e2 * e2).sum(dim=1, keepdim=True)).clamp_min(tiny)
        return torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=2)

    @torch.jit.export
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The max-pooled feature of every cloud, ``(n, point_widths[-1])``: what the head sees, and
        what a model with ``neighbor_average`` averages over each atom and its nearest neighbours."""
        if x.dim() != 2 or x.shape[1] != 3 * self.n_points:
            raise ValueError("PointNet: expected point clouds of {} neighbours, i.e. input of shape (n, {}), got "
                             "{}".format(self.n_points, 3 * self.n_points, x.shape))
        points = x.reshape(x.shape[0], self.n_points, 3)
        length = torch.sqrt((points * points).sum(dim=2))
        w = self.first.weight                                               # (width, 4): on x, y, z, |r|
        if self.align_radius > 0:
            # first layer on the aligned cloud, (points @ frame) @ w_xyz^T, computed as points @ (frame @ w_xyz^T):
            # one small matrix per atom instead of rotating every point
            h = torch.bmm(points, torch.matmul(self.frame(points, length), w[:, :3].t()))
        else:
            h = torch.matmul(points, w[:, :3].t())
        h = self.points(h + length.unsqueeze(2) * w[:, 3] + self.first.bias)   # (n, N, width)
        return h.amax(dim=1)                                                # symmetric: max over the points

    @torch.jit.export
    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """Class logits from (possibly neighbour-averaged) pooled features."""
        return self.classes(self.head(h))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits = self.classify(self.embed(x))
        return logits, logits[:, :0]                                        # no site output


def random_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random orthogonal 3 x 3 matrices, uniform (Haar) on O(3): QR of Gaussian matrices with
    the signs of R's diagonal moved into Q (Mezzadri, Notices AMS 54, 592 (2007)). Reflections are
    included on purpose: the classes are achiral, so a mirrored neighbourhood has the same label."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator))
    return q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
