"""The crystal graph convolutional network (Xie & Grossman, Phys. Rev. Lett. 120, 145301 (2018)).

One TorchScript-able module maps a batch of crystal graphs to a prediction, its uncertainty and each
atom's contribution. Inputs: atomic numbers (n,), the directed edge list ``center`` / ``neighbor``
(E,), edge lengths (E,) in Å, the crystal index of every atom (n,) and the number of crystals. Inside:

1. atom vectors: the element table (:mod:`.graph_features`, a buffer of the module) -> a linear embedding, plus
   a learned vector per element (initialised to zero): the table gives every element a start from its
   chemistry, the learned part lets the data correct it where the listed properties fall short (the
   element embeddings of SchNet and MEGNet; on the formation-energy validation split it lowered the
   MAE by 8-12%). An element absent from the training data keeps a zero vector, so its atoms are
   described by the table alone;
2. edge features: the distance expanded in Gaussians exp(-(d - μ_k)² / w²), μ_k from 0 to the cutoff;
3. ``n_conv`` convolutions, either the paper's gated form (its eq. 5, with batch norm as in the
   authors' code):  v_i <- g(v_i + BN(Σ_j σ(z_ij W_f + b_f) ⊙ g(z_ij W_s + b_s))),  z_ij = v_i ⊕ v_j ⊕ u_ij,
   or the simple form of the lecture (the paper's eq. 4):  v_i <- g((Σ_j v_j ⊕ u_ij) W_c + v_i W_s + b),
   g = softplus;
4. readout: the crystal's mean atom vector c = mean_i v_i is appended to every atom's vector and one
   MLP (the hidden layers) gives each atom a value y_i; the prediction is the mean of the y_i over the
   crystal. So the pooling is exactly additive: y_i is **atom i's contribution**, in the target's unit,
   and the prediction is the average of the contributions (the original code pools first and applies
   the MLP to the pooled vector, which has no per-atom decomposition). Each contribution includes its
   element's ``element_baseline`` (a linear composition model fitted before training, or zero);
5. output constraint (``output``), built into the readout so that it holds for every structure:
   ``"linear"`` (none); ``"non_negative"`` (a band gap): each contribution is softplus_β(u_i) =
   log(1 + exp(β u_i)) / β ≥ 0, u_i the atom's value in the target's unit, so the prediction, their
   mean, is ≥ 0; ``"non_negative_mean"``: the prediction is softplus_β(ū) of the mean ū of the u_i,
   so atoms may pull it down, and contribution_i = P + P'(ū)(u_i - ū), the first-order share, whose
   mean is P; ``"elemental_reference"`` (a formation energy, zero for the elements' reference
   crystals by definition): in a crystal of two or more elements contribution_i = u_i + e_Z as in
   ``"linear"``; in a single-element crystal contribution_i = softplus_β(w_i), w_i a second output of
   the atom's MLP: no element offset and no shift enter, only a non-negative excess over the element's
   reference, which the network drives towards 0 for ground states (softplus_β(w) -> 0 as w -> -∞;
   β = ``softplus_beta`` per unit of the target, so that the excess reaches 0.01 eV/atom at a modest
   w). The composition baseline is then fitted to the compounds only; ``"bounded"`` (a quantity with
   physical bounds lo < hi, ``bounds``, e.g. a Poisson ratio in (-1, 0.5)): each contribution is
   lo + (hi - lo) σ(t_i), σ the logistic sigmoid, t_i = logit(p) + u_i s / ((hi - lo) p (1 - p)),
   p = (m - lo) / (hi - lo) (m, s the training targets' mean and standard deviation, u_i the atom's
   standardised value), so every contribution and their mean lie within the bounds; at the mean it acts
   as ``"linear"`` (value m, slope s) and it bends towards the bounds away from it;
6. uncertainty: a second MLP on c gives log σ (a Gaussian negative-log-likelihood head), multiplied by
   ``sigma_scale``, the calibration factor fitted on validation data after training.

Targets are standardised inside the module (``target_mean``, ``target_std``), so its outputs are in
the target's unit.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn


class GaussianExpansion(nn.Module):
    def __init__(self, cutoff: float, step: float):
        super().__init__()
        self.register_buffer("centers", torch.arange(0.0, cutoff + 0.5 * step, step, dtype=torch.float32))
        self.width = float(step)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        exponent = ((distance[:, None] - self.centers[None, :]) ** 2) / self.width ** 2
        # exp(-x) falls below float32's smallest normal number at x = 87.3: zero it from x = 87 on, for a
        # few percent of subnormal features would make every matrix product on them (training's weight
        # gradients above all) several times slower on x86 processors; the outputs stay the same
        return torch.where(exponent < 87.0, torch.exp(-exponent), torch.zeros_like(exponent))


class GatedConv(nn.Module):
    """The paper's eq. 5 with the batch norms of the authors' code. The linear map of z_ij = v_i ⊕ v_j ⊕ u_ij
    is computed as v_i W_1 + v_j W_2 + u_ij W_3 with the atom terms evaluated once per atom and then
    gathered: the same function as one matrix on the concatenation, at about a quarter of the per-edge
    arithmetic (the atom vectors are wider than the edge features)."""

    def __init__(self, width: int, edge_width: int):
        super().__init__()
        self.width = width
        self.from_center = nn.Linear(width, 2 * width, bias=False)
        self.from_neighbor = nn.Linear(width, 2 * width, bias=False)
        self.from_edge = nn.Linear(edge_width, 2 * width)
        self.norm_edges = nn.BatchNorm1d(2 * width)
        self.norm_sum = nn.BatchNorm1d(width)

    def forward(self, atoms: torch.Tensor, edges: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor):
        z = self.from_center(atoms)[center] + self.from_neighbor(atoms)[neighbor] + self.from_edge(edges)
        gate, core = self.norm_edges(z).chunk(2, dim=1)
        messages = torch.sigmoid(gate) * nn.functional.softplus(core)
        summed = torch.zeros_like(atoms).index_add_(0, center, messages)
        return nn.functional.softplus(atoms + self.norm_sum(summed))


class SimpleConv(nn.Module):
    """The paper's eq. 4 (the lecture's form): one weight matrix on the summed neighbour ⊕ edge vectors."""

    def __init__(self, width: int, edge_width: int):
        super().__init__()
        self.neighbors = nn.Linear(width + edge_width, width)
        self.self_weight = nn.Linear(width, width, bias=False)

    def forward(self, atoms: torch.Tensor, edges: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor):
        z = torch.cat([atoms[neighbor], edges], dim=1)
        summed = torch.zeros((atoms.shape[0], z.shape[1]), dtype=atoms.dtype, device=atoms.device).index_add_(0, center, z)
        return nn.functional.softplus(self.neighbors(summed) + self.self_weight(atoms))


def mlp(widths: List[int]) -> nn.Sequential:
    layers: List[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.Softplus()]
    return nn.Sequential(*layers[:-1])  # no activation after the output layer


class CGCNN(nn.Module):
    def __init__(self, element_table, cutoff: float = 8.0, gaussian_step: float = 0.2, width: int = 64,
                 n_conv: int = 3, hidden: List[int] = (128,), convolution: str = "gated", output: str = "linear",
                 softplus_beta: float = 1.0, bounds: Tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        modes = {"linear": 0, "non_negative": 1, "elemental_reference": 2, "bounded": 3, "non_negative_mean": 4}
        if output not in modes:
            raise ValueError(f"output must be one of {sorted(modes)}, not {output!r}")
        if output == "bounded" and not (len(bounds) == 2 and float(bounds[0]) < float(bounds[1])):
            raise ValueError(f"output = 'bounded' needs bounds = [lower, upper] with lower < upper, not {bounds!r}")
        self.output_mode = modes[output]
        self.lower, self.upper = float(bounds[0]), float(bounds[1])
        self.softplus_beta = float(softplus_beta)
        self.register_buffer("elements", torch.as_tensor(element_table, dtype=torch.float32))
        self.expand = GaussianExpansion(cutoff, gaussian_step)
        edge_width = int(self.expand.centers.numel())
        self.embed = nn.Linear(self.elements.shape[1], width)
        self.element_vectors = nn.Embedding(self.elements.shape[0], width)
        nn.init.zeros_(self.element_vectors.weight)
        conv = {"gated": GatedConv, "simple": SimpleConv}[convolution]
        self.convs = nn.ModuleList([conv(width, edge_width) for _ in range(n_conv)])
        self.contribution = mlp([2 * width] + list(hidden) + [2 if self.output_mode == 2 else 1])
        self.log_sigma = mlp([width] + list(hidden)[:1] + [1])
        # per-element offset of the atom contributions (see fit_composition_baseline); zero = none
        self.register_buffer("element_baseline", torch.zeros(self.elements.shape[0]))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.register_buffer("sigma_scale", torch.ones(()))

    def forward(self, numbers: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, distance: torch.Tensor,
                crystal: torch.Tensor, n_crystals: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction (B,), σ (B,), contributions (n,)), all in the target's unit."""
        atoms = self.embed(self.elements[numbers]) + self.element_vectors(numbers)
        edges = self.expand(distance.to(torch.float32))
        for conv in self.convs:
            atoms = conv(atoms, edges, center, neighbor)
        counts = torch.zeros(n_crystals, dtype=atoms.dtype, device=atoms.device).index_add_(
            0, crystal, torch.ones_like(crystal, dtype=atoms.dtype))
        pooled = torch.zeros((n_crystals, atoms.shape[1]), dtype=atoms.dtype, device=atoms.device).index_add_(
            0, crystal, atoms) / counts[:, None]
        heads = self.contribution(torch.cat([atoms, pooled[crystal]], dim=1))
        per_atom = heads[:, 0]
        total = torch.empty(0)
        if self.output_mode == 2:
            # single-element crystals: every atom's element makes up the whole crystal
            n_z = self.elements.shape[0]
            key = crystal * n_z + numbers
            same = torch.zeros(n_crystals * n_z, dtype=atoms.dtype, device=atoms.device).index_add_(
                0, key, torch.ones_like(per_atom))
            single = (same[key] == counts[crystal]).to(atoms.dtype)
            mixing = per_atom * self.target_std + self.target_mean + self.element_baseline[numbers]
            excess = nn.functional.softplus(heads[:, 1] * self.target_std, beta=self.softplus_beta)
            contributions = (1.0 - single) * mixing + single * excess
        elif self.output_mode == 3:
            span = self.upper - self.lower
            p0 = ((self.target_mean - self.lower) / span).clamp(1e-3, 1 - 1e-3)
            slope = self.target_std / (span * p0 * (1.0 - p0))  # d contribution / d u = s at the mean
            contributions = self.lower + span * torch.sigmoid(torch.logit(p0) + per_atom * slope)
        elif self.output_mode == 4:
            # the crystal's value softplus_β(ū) of the mean unconstrained value; each contribution its
            # first-order share c_i = P + P'(ū)(u_i - ū), whose mean is P exactly
            free = per_atom * self.target_std + self.target_mean + self.element_baseline[numbers]
            mean_free = torch.zeros(n_crystals, dtype=atoms.dtype, device=atoms.device).index_add_(
                0, crystal, free) / counts
            total = nn.functional.softplus(mean_free, beta=self.softplus_beta)
            slope = torch.sigmoid(self.softplus_beta * mean_free)
            contributions = total[crystal] + slope[crystal] * (free - mean_free[crystal])
        elif self.output_mode == 1:
            contributions = nn.functional.softplus(
                per_atom * self.target_std + self.target_mean + self.element_baseline[numbers], beta=self.softplus_beta)
        else:
            contributions = per_atom * self.target_std + self.target_mean + self.element_baseline[numbers]
        prediction = torch.zeros(n_crystals, dtype=atoms.dtype, device=atoms.device).index_add_(
            0, crystal, contributions) / counts
        if self.output_mode == 4:
            prediction = total  # equal to the contributions' mean, without its rounding below zero
        sigma = torch.exp(self.log_sigma(pooled).squeeze(1)) * self.target_std * self.sigma_scale
        return prediction, sigma, contributions


class Ensemble(nn.Module):
    """A deep ensemble (Lakshminarayanan et al., NeurIPS 2017): N networks of the same architecture
    trained from different initialisations and data orders. Same inputs and outputs as one network:
    prediction = the members' mean; σ² = mean of the members' σ² (each one's noise estimate) + the
    variance of their predictions (their disagreement), σ times ``sigma_scale`` (calibrated on
    validation data); contributions = the members' mean contributions, so their mean is still the
    prediction, and every member's output constraint holds for the mean too."""

    def __init__(self, members: List[CGCNN]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("sigma_scale", torch.ones(()))

    def forward(self, numbers: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, distance: torch.Tensor,
                crystal: torch.Tensor, n_crystals: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        predictions: List[torch.Tensor] = []
        sigmas: List[torch.Tensor] = []
        contributions: List[torch.Tensor] = []
        for member in self.members:
            p, s, c = member(numbers, center, neighbor, distance, crystal, n_crystals)
            predictions.append(p)
            sigmas.append(s)
            contributions.append(c)
        p_all = torch.stack(predictions)
        variance = (torch.stack(sigmas) ** 2).mean(0) + p_all.var(0, unbiased=False)
        return p_all.mean(0), torch.sqrt(variance) * self.sigma_scale, torch.stack(contributions).mean(0)


class Batch:
    """Graphs concatenated into one disjoint graph, as the network takes them."""

    def __init__(self, graphs):
        import numpy as np

        offsets = np.cumsum([0] + [g.n_atoms for g in graphs[:-1]])
        self.numbers = torch.from_numpy(np.concatenate([g.numbers for g in graphs]))
        self.center = torch.from_numpy(np.concatenate([g.center + o for g, o in zip(graphs, offsets)]))
        self.neighbor = torch.from_numpy(np.concatenate([g.neighbor + o for g, o in zip(graphs, offsets)]))
        self.distance = torch.from_numpy(np.concatenate([g.distance for g in graphs]).astype(np.float32))
        self.crystal = torch.from_numpy(np.repeat(np.arange(len(graphs)), [g.n_atoms for g in graphs]))
        self.n_crystals = len(graphs)

    def run(self, module):
        return module(self.numbers, self.center, self.neighbor, self.distance, self.crystal, self.n_crystals)
