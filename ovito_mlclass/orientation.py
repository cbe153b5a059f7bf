"""Per-atom lattice orientation of crystalline atoms, as OVITO's polyhedral template matching gives it.

    result = classify(data, "metals")
    q = orientations(data, result)                # (n, 4) quaternions X, Y, Z, W; 0 for other atoms
    angle = disorientation(q[0], q[1], "cubic")   # radians

The quaternions follow OVITO's ``Orientation`` property of ``PolyhedralTemplateMatchingModifier``
(``output_orientation=True``) exactly, so that colouring by orientation, grain segmentation and
texture tools read them unchanged. The convention, established against OVITO 3.17's PTM on
rotated perfect crystals of every lattice below (tests/test_orientation.py keeps it so):

- ``q`` is the rotation that carries the lattice from its reference frame into the sample
  (``x_sample = R(q) x_reference``), a unit quaternion stored X, Y, Z, W (scalar last, as in OVITO
  and ``scipy.spatial.transform.Rotation.from_quat``).
- Reference frames: FCC, BCC, simple cubic and cubic diamond have their cube axes along x, y, z;
  HCP and hexagonal diamond have c along z and the lattice vector a1 along x.
- Of the symmetry-equivalent quaternions ``q g`` (``g``: the 24 proper rotations of the cube, or
  the 12 of the hexagonal lattice), the one with the largest ``|W|``, with ``W >= 0`` (PTM's
  fundamental zone; for hexagonal lattices its "conventional" one, which OVITO uses). Where two
  representatives tie (an orientation on the zone's boundary), either may be given.
- Atoms of other classes (Other, Liquid, ICO, graphene, ...) get (0, 0, 0, 0), as PTM gives atoms
  that match none of its templates. (PTM keeps the orientation of atoms that match a template but
  fail its RMSD cutoff, though it calls them Other.)

Method: each atom's neighbour shell (unit vectors to its nearest neighbours, so the fit is
scale-free; for the diamonds its 4 bonded neighbours and their 3 nearest others, as PTM builds
them) is superposed onto its class's ideal template. Candidate rotations map a pair of
neighbours onto each inequivalent pair of template neighbours at the same angle; the best ones
are refined by assigning every neighbour to its nearest template vector and solving for the
rotation (Horn's quaternion method) until the assignment stops changing. With ``average`` (the
default) the orientations are then averaged over the atom and its same-class nearest neighbours,
each neighbour's quaternion first moved to the symmetry equivalent closest to the atom's own,
leaving out members more than 12 degrees from the plain mean; every atom is fitted again from
that mean (close to melting a few percent of single shells are fitted a little better by a wrong
orientation than by the right one) and the refitted orientations are averaged the same way. This
halves the scatter of single-atom fits (and PTM's) close to melting; boundaries between grains
more than 12 degrees apart stay sharp, smaller orientation gradients are smoothed over one
neighbour shell.

Every atom is computed independently and in a fixed order (numba, parallel over atoms), so the
results do not depend on the number of threads (``NUMBA_NUM_THREADS``).
"""
from __future__ import annotations

import itertools
import math

import numba
import numpy as np
from numba import prange

from .frames import as_frame
from .neighbors import NeighborList, check_positions, nearest_neighbors
from .structure_types import PTM_TYPES

__all__ = ["orientations", "orientations_from_neighbors", "neighbors_needed", "disorientation", "symmetry_group",
           "SUPPORTED_TYPES"]

FCC, HCP, BCC, SC = (PTM_TYPES[name][0] for name in ("FCC", "HCP", "BCC", "Simple cubic"))
CUBIC_DIAMOND, HEX_DIAMOND = PTM_TYPES["Cubic diamond"][0], PTM_TYPES["Hexagonal diamond"][0]
CUBIC_TYPES = (FCC, BCC, SC, CUBIC_DIAMOND)
HEXAGONAL_TYPES = (HCP, HEX_DIAMOND)
SUPPORTED_TYPES = CUBIC_TYPES + HEXAGONAL_TYPES
_TYPE_NAMES = {type_id: name for name, (type_id, _, _) in PTM_TYPES.items()}


# ---------------------------------------------------------------------------------------------- symmetry


def _axis_angle(axis, degrees) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by ``degrees`` about ``axis``, with w >= 0."""
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    half = math.radians(degrees) / 2
    q = np.concatenate([[math.cos(half)], math.sin(half) * axis])
    return q if q[0] >= 0 else -q


def _cubic_group() -> np.ndarray:
    """The 24 proper rotations of the cube: identity, 90/180/270 degrees about <100>, 120/240
    about <111>, 180 about <110>."""
    ops = [_axis_angle((0, 0, 1), 0)]
    ops += [_axis_angle(axis, angle) for axis in np.eye(3) for angle in (90, 180, 270)]
    ops += [_axis_angle((1, sy, sz), angle) for sy in (1, -1) for sz in (1, -1) for angle in (120, 240)]
    ops += [_axis_angle(axis, 180) for axis in ((1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1))]
    return np.array(ops)


def _hexagonal_group() -> np.ndarray:
    """The 12 proper rotations of the hexagonal lattice (622) with c along z and a1 along x:
    multiples of 60 degrees about z, and 180 about the in-plane axes every 30 degrees from x."""
    ops = [_axis_angle((0, 0, 1), 60 * k) for k in range(6)]
    ops += [_axis_angle((math.cos(math.radians(30 * k)), math.sin(math.radians(30 * k)), 0), 180) for k in range(6)]
    return np.array(ops)


_GROUPS = {"cubic": _cubic_group(), "hexagonal": _hexagonal_group()}


def _lattice_of(lattice) -> str:
    """'cubic' or 'hexagonal' from either word, a structure type id or a structure type name."""
    if isinstance(lattice, str) and lattice.lower() in _GROUPS:
        return lattice.lower()
    type_id = PTM_TYPES[lattice][0] if isinstance(lattice, str) and lattice in PTM_TYPES else lattice
    if isinstance(type_id, (int, np.integer)) and int(type_id) in SUPPORTED_TYPES:
        return "cubic" if int(type_id) in CUBIC_TYPES else "hexagonal"
    supported = ", ".join(_TYPE_NAMES[t] for t in SUPPORTED_TYPES)
    raise ValueError(f"Unknown lattice {lattice!r}: give 'cubic', 'hexagonal' or one of the structure types "
                     f"{supported} (name or OVITO id).")


def symmetry_group(lattice) -> np.ndarray:
    """The proper rotations of a lattice (``'cubic'``: 24, ``'hexagonal'``: 12, or a structure type
    name or id) as quaternions X, Y, Z, W in the reference frame of the module docstring."""
    return _GROUPS[_lattice_of(lattice)][:, [1, 2, 3, 0]].copy()


# ---------------------------------------------------------------------------------------------- templates


def _shell(basis, lengths, count) -> np.ndarray:
    """Unit vectors from the atom at the origin of an ideal lattice (``basis`` in fractions of an
    orthogonal cell with edge ``lengths``) to its ``count`` nearest neighbours, nearest first."""
    grid = np.stack(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    points = ((grid + np.asarray(basis)[None]).reshape(-1, 3) * lengths)
    distance = np.linalg.norm(points, axis=1)
    order = np.argsort(np.round(distance, 9), kind="stable")[1:count + 1]  # [0] is the atom itself
    return points[order] / distance[order, None]


_FCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
_HCP_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5 / 6, 0.5], [0, 1 / 3, 0.5]])
_HEXAGONAL = np.array([1.0, math.sqrt(3), math.sqrt(8 / 3)])  # orthogonal cell of the ideal hcp lattice, a = 1

# type -> (template: unit vectors of the neighbour shell of one site in the reference frame, size
# of its first shell, lattice). The diamonds' 16 points are the 4 bonded neighbours, then the
# 12 second neighbours (in the ideal lattices the 16 nearest; in the data built as PTM does).
_TEMPLATES = {
    FCC: (_shell(_FCC_BASIS, 1.0, 12), 12, "cubic"),
    BCC: (_shell([[0, 0, 0], [0.5, 0.5, 0.5]], 1.0, 14), 8, "cubic"),
    SC: (_shell([[0, 0, 0]], 1.0, 6), 6, "cubic"),
    CUBIC_DIAMOND: (_shell(np.vstack([_FCC_BASIS, _FCC_BASIS + 0.25]), 1.0, 16), 4, "cubic"),
    HCP: (_shell(_HCP_BASIS, _HEXAGONAL, 12), 12, "hexagonal"),
    HEX_DIAMOND: (_shell(np.vstack([_HCP_BASIS, _HCP_BASIS + [0, 0, 3 / 8]]), _HEXAGONAL, 16), 4, "hexagonal"),
}
MAX_POINTS = 16


def _rotation_matrix(q) -> np.ndarray:
    r = np.empty((3, 3))
    _to_matrix(np.asarray(q, dtype=float), r)
    return r


def _frame(a, b) -> np.ndarray:
    """Orthonormal frame (columns) with its first axis along ``a`` and ``b`` in its first two."""
    e2 = b - np.dot(a, b) * a
    e2 /= np.linalg.norm(e2)
    return np.column_stack([a, e2, np.cross(a, e2)])


def _site_symmetry(template, group) -> list:
    """The lattice rotations (matrices) that map the template onto itself: the site's own symmetry."""
    rotations = [_rotation_matrix(g) for g in group]
    return [r for r in rotations if np.abs((template @ r.T) @ template.T - 1.0).min(axis=1).max() < 1e-9]


def _variants(template, group) -> np.ndarray:
    """Lattice rotations g, one per distinct rotated template R(g) T: the shells that sites of the
    lattice have (one for FCC, BCC, SC; two for HCP and cubic diamond; four for hexagonal diamond)."""
    kept = []
    for g in group:
        rotated = template @ _rotation_matrix(g).T
        if not any(np.abs(rotated @ other.T - 1.0).min(axis=1).max() < 1e-9 for _, other in kept):
            kept.append((g, rotated))
    return np.array([g for g, _ in kept])


def _candidate_frames(template, first, site) -> np.ndarray:
    """Frames of the pairs of first-shell template vectors at the shell's smallest angle, one per
    class of pairs that the site's own symmetry does not relate: superposing an observed pair onto
    each gives every distinct start."""
    shell = template[:first]
    cosines = shell @ shell.T
    np.fill_diagonal(cosines, -2.0)
    closest = cosines.max()
    kept: list[tuple[int, int]] = []
    for a, b in itertools.product(range(first), repeat=2):
        if a == b or abs(cosines[a, b] - closest) > 1e-9:
            continue
        if not any(np.allclose(r @ shell[a2], shell[a], atol=1e-9) and np.allclose(r @ shell[b2], shell[b], atol=1e-9)
                   for a2, b2 in kept for r in site):
            kept.append((a, b))
    return np.array([_frame(shell[a], shell[b]) for a, b in kept]), closest


def _tables():
    """The templates and symmetry of every structure type, packed into arrays indexed by type id
    for the kernels."""
    size = max(SUPPORTED_TYPES) + 1
    templates = np.zeros((size, MAX_POINTS, 3))
    points = np.zeros(size, np.int64)          # template size (0: no orientation for this type)
    first = np.zeros(size, np.int64)           # first-shell size: anchors and averaging (diamonds)
    cos_closest = np.zeros(size)               # cosine of the smallest angle in the first shell
    frames = np.zeros((size, 8, 3, 3))
    n_frames = np.zeros(size, np.int64)
    groups = np.zeros((size, 24, 4))
    n_group = np.zeros(size, np.int64)
    variants = np.zeros((size, 4, 4))
    n_variants = np.zeros(size, np.int64)
    for type_id, (template, n_first, lattice) in _TEMPLATES.items():
        group = _GROUPS[lattice]
        templates[type_id, :len(template)] = template
        points[type_id], first[type_id] = len(template), n_first
        found, cos_closest[type_id] = _candidate_frames(template, n_first, _site_symmetry(template, group))
        frames[type_id, :len(found)], n_frames[type_id] = found, len(found)
        groups[type_id, :len(group)], n_group[type_id] = group, len(group)
        found = _variants(template, group)
        variants[type_id, :len(found)], n_variants[type_id] = found, len(found)
    return templates, points, first, cos_closest, frames, n_frames, groups, n_group, variants, n_variants


# ---------------------------------------------------------------------------------------------- kernels


@numba.njit(cache=True, inline="always")
def _qmul(a, b, out):
    """Hamilton product a b of quaternions (w, x, y, z)."""
    out[0] = a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3]
    out[1] = a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2]
    out[2] = a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1]
    out[3] = a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0]


@numba.njit(cache=True)
def _to_matrix(q, r):
    w, x, y, z = q[0], q[1], q[2], q[3]
    r[0, 0] = w * w + x * x - y * y - z * z
    r[0, 1] = 2 * (x * y - w * z)
    r[0, 2] = 2 * (x * z + w * y)
    r[1, 0] = 2 * (x * y + w * z)
    r[1, 1] = w * w - x * x + y * y - z * z
    r[1, 2] = 2 * (y * z - w * x)
    r[2, 0] = 2 * (x * z - w * y)
    r[2, 1] = 2 * (y * z + w * x)
    r[2, 2] = w * w - x * x - y * y + z * z


@numba.njit(cache=True)
def _top_eigenvector(a, v, q):
    """``q`` := the eigenvector of the largest eigenvalue of the symmetric 4x4 matrix ``a``
    (cyclic Jacobi; ``a`` and the scratch ``v`` are overwritten)."""
    for i in range(4):
        for j in range(4):
            v[i, j] = 1.0 if i == j else 0.0
    scale = 0.0
    for i in range(4):
        for j in range(4):
            scale += a[i, j] * a[i, j]
    for _ in range(30):
        off = 0.0
        for p in range(3):
            for r in range(p + 1, 4):
                off += a[p, r] * a[p, r]
        if off <= 1e-30 * scale:
            break
        for p in range(3):
            for r in range(p + 1, 4):
                if a[p, r] == 0.0:
                    continue
                theta = (a[r, r] - a[p, p]) / (2.0 * a[p, r])
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(4):
                    akp, akr = a[k, p], a[k, r]
                    a[k, p], a[k, r] = c * akp - s * akr, s * akp + c * akr
                for k in range(4):
                    apk, ark = a[p, k], a[r, k]
                    a[p, k], a[r, k] = c * apk - s * ark, s * apk + c * ark
                for k in range(4):
                    vkp, vkr = v[k, p], v[k, r]
                    v[k, p], v[k, r] = c * vkp - s * vkr, s * vkp + c * vkr
    best = 0
    for i in range(1, 4):
        if a[i, i] > a[best, best]:
            best = i
    for i in range(4):
        q[i] = v[i, best]


@numba.njit(cache=True)
def _superpose(u, template, assignment, m, n_mat, v, q):
    """``q`` := the rotation R maximising sum_i u_i . R t_assignment[i] (Horn, J. Opt. Soc. Am. A 4,
    629 (1987): the top eigenvector of a 4x4 matrix built from the correlation of the two sets)."""
    sxx = sxy = sxz = syx = syy = syz = szx = szy = szz = 0.0
    for i in range(m):
        t = template[assignment[i]]
        sxx += t[0] * u[i, 0]
        sxy += t[0] * u[i, 1]
        sxz += t[0] * u[i, 2]
        syx += t[1] * u[i, 0]
        syy += t[1] * u[i, 1]
        syz += t[1] * u[i, 2]
        szx += t[2] * u[i, 0]
        szy += t[2] * u[i, 1]
        szz += t[2] * u[i, 2]
    n_mat[0, 0], n_mat[1, 1] = sxx + syy + szz, sxx - syy - szz
    n_mat[2, 2], n_mat[3, 3] = -sxx + syy - szz, -sxx - syy + szz
    n_mat[0, 1] = n_mat[1, 0] = syz - szy
    n_mat[0, 2] = n_mat[2, 0] = szx - sxz
    n_mat[0, 3] = n_mat[3, 0] = sxy - syx
    n_mat[1, 2] = n_mat[2, 1] = sxy + syx
    n_mat[1, 3] = n_mat[3, 1] = szx + sxz
    n_mat[2, 3] = n_mat[3, 2] = syz + szy
    _top_eigenvector(n_mat, v, q)


@numba.njit(cache=True)
def _assign(u, template, m, r, assignment):
    """Assigns every observed vector to the template vector nearest to it under rotation ``r``;
    returns the sum of the cosines (m for a perfect fit)."""
    total = 0.0
    for i in range(m):
        # R^T u_i: the observed vector in the template's frame
        x = r[0, 0] * u[i, 0] + r[1, 0] * u[i, 1] + r[2, 0] * u[i, 2]
        y = r[0, 1] * u[i, 0] + r[1, 1] * u[i, 1] + r[2, 1] * u[i, 2]
        z = r[0, 2] * u[i, 0] + r[1, 2] * u[i, 1] + r[2, 2] * u[i, 2]
        best, which = -2.0, 0
        for j in range(m):
            c = x * template[j, 0] + y * template[j, 1] + z * template[j, 2]
            if c > best:
                best, which = c, j
        assignment[i] = which
        total += best
    return total


@numba.njit(cache=True)
def _into_zone(q, group, n_group, out):
    """``out`` := the equivalent q g with the largest |w|, w >= 0 (PTM's fundamental zone)."""
    best, which = -1.0, 0
    for k in range(n_group):
        g = group[k]
        w = abs(q[0] * g[0] - q[1] * g[1] - q[2] * g[2] - q[3] * g[3])
        if w > best:
            best, which = w, k
    _qmul(q, group[which], out)
    if out[0] < 0.0:
        for i in range(4):
            out[i] = -out[i]


ANCHORS = 3    # observed first-shell neighbours used as anchors of candidate alignments
PARTNERS = 2   # partners of each anchor: the neighbours at the angles nearest the shell's smallest one
REFINED = 2    # candidates refined, best first (fewer leave patches of hot bcc at a wrong orientation)
MAX_CANDIDATES = ANCHORS * PARTNERS * 8


@numba.njit(cache=True)
def _candidates(u, anchor, first, cos_closest, frames, n_frames, rotations):
    """Candidate rotations (into ``rotations``) that carry the observed first-shell neighbour
    ``anchor`` and a partner onto each inequivalent pair of template neighbours at the same angle;
    returns how many."""
    count = 0
    a = u[anchor]
    taken = -1
    for _ in range(PARTNERS):
        partner, gap = -1, 1e300
        for b in range(first):
            if b != anchor and b != taken:
                d = abs(a[0] * u[b, 0] + a[1] * u[b, 1] + a[2] * u[b, 2] - cos_closest)
                if d < gap:
                    partner, gap = b, d
        if partner < 0:
            break
        taken = partner
        b = u[partner]
        dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
        e2x, e2y, e2z = b[0] - dot * a[0], b[1] - dot * a[1], b[2] - dot * a[2]
        norm = math.sqrt(e2x * e2x + e2y * e2y + e2z * e2z)
        if norm < 1e-9:
            continue
        e2x, e2y, e2z = e2x / norm, e2y / norm, e2z / norm
        e3x, e3y, e3z = a[1] * e2z - a[2] * e2y, a[2] * e2x - a[0] * e2z, a[0] * e2y - a[1] * e2x
        for c in range(n_frames):
            f = frames[c]
            r = rotations[count]
            for j in range(3):  # R = F_observed F_template^T
                r[0, j] = a[0] * f[j, 0] + e2x * f[j, 1] + e3x * f[j, 2]
                r[1, j] = a[1] * f[j, 0] + e2y * f[j, 1] + e3y * f[j, 2]
                r[2, j] = a[2] * f[j, 0] + e2z * f[j, 1] + e3z * f[j, 2]
            count += 1
    return count


@numba.njit(cache=True)
def _refine(u, template, m, r, assignment, previous, n_mat, v, q):
    """Nearest-template assignment and superposition, alternated from rotation ``r`` until the
    assignment no longer changes; ``q`` := the rotation, returns the sum of cosines."""
    _assign(u, template, m, r, previous)
    score = 0.0
    for _ in range(10):
        _superpose(u, template, previous, m, n_mat, v, q)
        _to_matrix(q, r)
        score = _assign(u, template, m, r, assignment)
        same = True
        for i in range(m):
            if assignment[i] != previous[i]:
                same = False
            previous[i] = assignment[i]
        if same:
            break
    return score


@numba.njit(cache=True)
def _fit(u, m, first, cos_closest, template, frames, n_frames, scratch, q):
    """Best superposition of the ``m`` observed unit vectors ``u`` (first shell first) onto the
    template; ``q`` := its rotation (w, x, y, z). The candidates that fit best before refinement
    are refined; the best refined fit is kept."""
    rotations, scores, r, n_mat, v, best_q, assignment, previous = scratch
    count = 0
    for anchor in range(min(ANCHORS, first)):
        count += _candidates(u, anchor, first, cos_closest, frames, n_frames, rotations[count:])
    for c in range(count):
        scores[c] = _assign(u, template, m, rotations[c], assignment)
    best = -1e300
    for _ in range(min(REFINED, count)):
        top = 0
        for c in range(1, count):
            if scores[c] > scores[top]:
                top = c
        scores[top] = -1e300  # not again
        r[:, :] = rotations[top]
        score = _refine(u, template, m, r, assignment, previous, n_mat, v, q)
        if score > best:
            best = score
            best_q[:] = q
    q[:] = best_q
    return best > -1e300


@numba.njit(cache=True)
def _gather(i, offsets, neighbors, vectors, m, diamond, u):
    """Unit vectors of atom i's neighbour shell into ``u``; False if it is incomplete."""
    start = offsets[i]
    if offsets[i + 1] - start < (4 if diamond else m):
        return False
    count = 0
    if not diamond:
        for k in range(m):
            if neighbors[start + k] < 0:
                return False
            for d in range(3):
                u[k, d] = vectors[start + k, d]
        count = m
    else:  # 4 bonded neighbours, then the 3 nearest neighbours of each other than the atom itself
        for k in range(4):
            if neighbors[start + k] < 0:
                return False
            for d in range(3):
                u[k, d] = vectors[start + k, d]
        count = 4
        for k in range(4):
            j = neighbors[start + k]
            row, taken = offsets[j], 0
            for e in range(offsets[j + 1] - row):
                if taken == 3:
                    break
                if neighbors[row + e] < 0:
                    return False
                back = 0.0
                for d in range(3):
                    back += (vectors[start + k, d] + vectors[row + e, d]) ** 2
                if neighbors[row + e] == i and back < 1e-6 * (u[k, 0] ** 2 + u[k, 1] ** 2 + u[k, 2] ** 2):
                    continue  # the bond back to the atom
                for d in range(3):
                    u[count, d] = u[k, d] + vectors[row + e, d]
                count += 1
                taken += 1
            if taken < 3:
                return False
    for k in range(count):
        norm = math.sqrt(u[k, 0] ** 2 + u[k, 1] ** 2 + u[k, 2] ** 2)
        if not norm > 0.0 or not math.isfinite(norm):
            return False
        for d in range(3):
            u[k, d] /= norm
    return True


@numba.njit(cache=True)
def _is_zero(q):
    return q[0] == 0.0 and q[1] == 0.0 and q[2] == 0.0 and q[3] == 0.0


CHUNK = 256  # atoms per task: scratch arrays are allocated once per chunk, not per atom


@numba.njit(cache=True, parallel=True)
def _fit_all(offsets, neighbors, vectors, types, templates, points, first, cos_closest, frames, n_frames,
             groups, n_group, variants, n_variants, start, out):
    """Every atom's own fit into ``out``: from the candidate alignments, or, for atoms with a
    nonzero ``start`` orientation, refined from the start's variant that fits the shell best (a
    lattice orientation is the rotation of one of the shells its sites have; see _variants)."""
    n = len(types)
    n_chunks = (n + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        u = np.empty((MAX_POINTS, 3))
        scratch = (np.empty((MAX_CANDIDATES, 3, 3)), np.empty(MAX_CANDIDATES),
                   np.empty((3, 3)), np.empty((4, 4)), np.empty((4, 4)), np.empty(4),
                   np.empty(MAX_POINTS, np.int64), np.empty(MAX_POINTS, np.int64))
        r, n_mat, v, assignment, previous = scratch[2], scratch[3], scratch[4], scratch[6], scratch[7]
        q = np.empty(4)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            t = types[i]
            if t < 0 or t >= len(points) or points[t] == 0:
                continue
            m = points[t]
            if not _gather(i, offsets, neighbors, vectors, m, first[t] == 4, u):
                continue
            if len(start) and not _is_zero(start[i]):
                best, which = -1e300, 0
                for k in range(n_variants[t]):
                    _qmul(start[i], variants[t, k], q)
                    _to_matrix(q, r)
                    score = _assign(u, templates[t], m, r, assignment)
                    if score > best:
                        best, which = score, k
                _qmul(start[i], variants[t, which], q)
                _to_matrix(q, r)
                _refine(u, templates[t], m, r, assignment, previous, n_mat, v, q)
            elif not _fit(u, m, first[t], cos_closest[t], templates[t], frames[t], n_frames[t], scratch, q):
                continue
            _into_zone(q, groups[t], n_group[t], out[i])


@numba.njit(cache=True)
def _closest_equivalent(ref, qj, group, count, scratch, moved):
    """``moved`` := the symmetry equivalent q_j g closest to ``ref``, on ref's side of the sphere
    (ref . moved >= 0); returns ref . moved, the cosine of half their misorientation."""
    conj, rel = scratch[0], scratch[1]
    # ref . (q_j g) = (conj(q_j) ref) . g: the g with the largest |dot| brings q_j closest
    conj[0], conj[1], conj[2], conj[3] = qj[0], -qj[1], -qj[2], -qj[3]
    _qmul(conj, ref, rel)
    best, which = -1.0, 0
    for g in range(count):
        d = abs(rel[0] * group[g, 0] + rel[1] * group[g, 1] + rel[2] * group[g, 2] + rel[3] * group[g, 3])
        if d > best:
            best, which = d, g
    _qmul(qj, group[which], moved)
    if moved[0] * ref[0] + moved[1] * ref[1] + moved[2] * ref[2] + moved[3] * ref[3] < 0.0:
        for c in range(4):
            moved[c] = -moved[c]
    return best


@numba.njit(cache=True)
def _normalised_sum(members, used, min_cos, ref, out):
    """``out`` := the normalised sum of the members whose dot product with ``ref`` is at least
    ``min_cos``; False if there are none."""
    out[:] = 0.0
    taken = 0
    for k in range(used):
        m = members[k]
        if m[0] * ref[0] + m[1] * ref[1] + m[2] * ref[2] + m[3] * ref[3] >= min_cos:
            for c in range(4):
                out[c] += m[c]
            taken += 1
    if taken == 0:
        return False
    norm = math.sqrt(out[0] ** 2 + out[1] ** 2 + out[2] ** 2 + out[3] ** 2)
    for c in range(4):
        out[c] /= norm
    return True


OUTLIER_DEGREES = 12.0  # members this far from the plain mean are left out of the final mean


@numba.njit(cache=True, parallel=True)
def _average_all(offsets, neighbors, types, points, first, groups, n_group, q, out):
    """Each atom's quaternion averaged with those of its same-class nearest neighbours (the first
    shell; 14 for BCC), each moved first to its symmetry equivalent closest to the atom's. A second
    mean leaves out the members more than OUTLIER_DEGREES from the first: a neighbour (or the atom
    itself) whose shell is locally distorted, fitted as a twin, no longer pulls the mean."""
    n = len(types)
    n_chunks = (n + CHUNK - 1) // CHUNK
    min_cos = math.cos(math.radians(OUTLIER_DEGREES) / 2)
    for chunk in prange(n_chunks):
        scratch = np.empty((2, 4))
        members = np.empty((MAX_POINTS + 1, 4))
        mean = np.empty(4)
        trimmed = np.empty(4)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            if _is_zero(q[i]):
                continue
            t = types[i]
            group, count = groups[t], n_group[t]
            shell = 4 if first[t] == 4 else points[t]
            used = 0
            start = offsets[i]
            for k in range(-1, min(shell, offsets[i + 1] - start)):
                j = i if k < 0 else neighbors[start + k]
                if j >= 0 and types[j] == t and not _is_zero(q[j]):
                    _closest_equivalent(q[i], q[j], group, count, scratch, members[used])
                    used += 1
            _normalised_sum(members, used, -1.0, members[0], mean)
            # equivalents are at least 60 degrees apart: a member this close to the mean is the
            # equivalent closest to it as well
            if not _normalised_sum(members, used, min_cos, mean, trimmed):
                trimmed[:] = mean
            _into_zone(trimmed, group, count, out[i])


_TABLES = _tables()

# ---------------------------------------------------------------------------------------------- API


def neighbors_needed(types) -> int:
    """How many nearest neighbours per atom :func:`orientations_from_neighbors` needs for these
    structure types (0 if none of them has an orientation)."""
    _, points, first, *_ = _TABLES
    present = [t for t in SUPPORTED_TYPES if np.any(types == t)]
    return max((4 if first[t] == 4 else int(points[t]) for t in present), default=0)


def _type_ids(types, count: int) -> np.ndarray:
    types = np.asarray(getattr(types, "types", types))  # a Classification, or the ids themselves
    if types.ndim != 1 or len(types) != count:
        raise ValueError(f"types must hold one structure type id per particle ({count}), got shape {types.shape}.")
    if not np.issubdtype(types.dtype, np.integer):
        raise TypeError(f"types must be integer structure type ids (OVITO's: FCC = 1, ...), got {types.dtype}.")
    return np.ascontiguousarray(types, dtype=np.int64)


def orientations_from_neighbors(neighbors: NeighborList, types, average: bool = True) -> np.ndarray:
    """:func:`orientations` from a neighbour list: every atom's nearest neighbours in order of
    increasing distance (as :func:`ovito_mlclass.neighbors.nearest_neighbors` gives them, at least
    :func:`neighbors_needed` of them; missing ones, index -1, leave the atom without orientation)."""
    types = _type_ids(types, neighbors.n_atoms)
    out = np.zeros((len(types), 4))
    if neighbors_needed(types) == 0:
        return out
    _, points, first, _, _, _, groups, n_group, _, _ = _TABLES
    offsets = np.ascontiguousarray(neighbors.offsets, dtype=np.int64)
    index = np.ascontiguousarray(neighbors.neighbors, dtype=np.int64)
    vectors = np.ascontiguousarray(neighbors.vectors, dtype=np.float64)
    _fit_all(offsets, index, vectors, types, *_TABLES, np.zeros((0, 4)), out)
    if average:
        # the neighbourhood's mean, each atom refitted from it (a neighbour shell fitted as a twin
        # of the crystal is fitted again next to its neighbours' orientation), then their mean
        mean = np.zeros_like(out)
        _average_all(offsets, index, types, points, first, groups, n_group, out, mean)
        _fit_all(offsets, index, vectors, types, *_TABLES, mean, out)
        _average_all(offsets, index, types, points, first, groups, n_group, out, mean)
        out = mean
    return out[:, [1, 2, 3, 0]]  # X, Y, Z, W as OVITO stores them


def orientations(system, types, average: bool = True) -> np.ndarray:
    """Lattice orientation of every atom of a cubic or hexagonal class (FCC, HCP, BCC, simple cubic,
    cubic and hexagonal diamond) as an (n, 4) array of quaternions X, Y, Z, W in the convention of
    OVITO's PTM (module docstring); (0, 0, 0, 0) for atoms of other classes and for atoms whose
    neighbour shell is incomplete (fewer neighbours than the class has in a small, non-periodic
    system).

    ``system``: a :class:`~ovito_mlclass.frames.Frame`, an OVITO DataCollection, an ase.Atoms or
    arrays (see :func:`ovito_mlclass.frames.as_frame`); ``types``: one OVITO structure type id per
    particle, or the :class:`~ovito_mlclass.classify.Classification` of ``system``. ``average``:
    average over the atom and its same-class nearest neighbours (default); ``False`` gives each
    atom's own fit.
    """
    frame = as_frame(system)
    count = frame.count
    ids = _type_ids(types, count)
    if count == 0:
        return np.zeros((0, 4))
    check_positions(frame)
    needed = neighbors_needed(ids)
    if needed == 0:
        return np.zeros((count, 4))
    return orientations_from_neighbors(nearest_neighbors(frame, needed, allow_missing=True), ids, average)


def disorientation(q1, q2, lattice) -> np.ndarray:
    """Disorientation angle (radians, in [0, pi]) between orientations ``q1`` and ``q2`` (quaternions
    X, Y, Z, W, shape (4,) or (n, 4), broadcast against each other) of a lattice with the symmetry
    ``lattice`` (``'cubic'``, ``'hexagonal'``, or a structure type name or id).

    It is the smallest rotation angle among all rotations that carry one orientation onto the other
    when each may be replaced by any symmetry equivalent: min over g, h of angle((q1 g)^-1 q2 h),
    which, the group being closed, is min over g of angle(q1^-1 q2 g). Cubic: at most 62.8 degrees
    (Mackenzie); hexagonal: at most 93.8 degrees. Zero quaternions (atoms without orientation) give
    NaN. Inputs need not be normalised (float32 values from OVITO are fine).
    """
    group = _GROUPS[_lattice_of(lattice)]
    q1 = np.asarray(q1, dtype=np.float64)
    q2 = np.asarray(q2, dtype=np.float64)
    if q1.shape[-1:] != (4,) or q2.shape[-1:] != (4,):
        raise ValueError(f"Quaternions must have 4 components (X, Y, Z, W), got shapes {q1.shape} and {q2.shape}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        a = q1[..., [3, 0, 1, 2]] / np.linalg.norm(q1, axis=-1, keepdims=True)
        b = q2[..., [3, 0, 1, 2]] / np.linalg.norm(q2, axis=-1, keepdims=True)
    a, b = np.broadcast_arrays(a, b)
    # delta = conj(a) b; the w of delta g is delta . conj(g), so the equivalent closest to the
    # identity is delta g with conj(g) the group element of the largest |delta . g|
    w = a[..., 0] * b[..., 0] + np.sum(a[..., 1:] * b[..., 1:], axis=-1)
    v = a[..., :1] * b[..., 1:] - b[..., :1] * a[..., 1:] - np.cross(a[..., 1:], b[..., 1:])
    delta = np.concatenate([w[..., None], v], axis=-1)
    dots = np.abs(delta @ group.T)
    best = group[np.argmax(np.nan_to_num(dots, nan=0.0), axis=-1)] * [1.0, -1.0, -1.0, -1.0]
    # the angle of delta g from its vector part and scalar part (accurate near 0 as well)
    dw = delta[..., 0] * best[..., 0] - np.sum(delta[..., 1:] * best[..., 1:], axis=-1)
    dv = (delta[..., :1] * best[..., 1:] + best[..., :1] * delta[..., 1:]
          + np.cross(delta[..., 1:], best[..., 1:]))
    angle = 2.0 * np.arctan2(np.linalg.norm(dv, axis=-1), np.abs(dw))
    return angle if angle.ndim else float(angle)
