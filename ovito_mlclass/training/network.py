"""The feed-forward classifier (Geiger & Dellago, J. Chem. Phys. 139, 164105 (2013); Rogal et
al., Phys. Rev. Lett. 123, 245701 (2019)): standardised descriptors -> hidden layers -> class
logits, with an optional second head for a per-atom site label (Frank–Kasper coordination).

Written so that ``torch.jit.script`` and ``torch.export`` both accept it; the standardisation is
a pair of buffers inside the module, so the saved file needs nothing else.
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

    def set_standardisation(self, mean, std) -> None:
        std = torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-8)  # constant features stay finite
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.inv_std.copy_(1.0 / std)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.body((x - self.mean) * self.inv_std)
        sites = self.sites(h)
        return self.classes(h), sites[:, : self.n_sites]
