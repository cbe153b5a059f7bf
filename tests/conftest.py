"""Structure builders and shared checks for the test suite."""
import sys
from pathlib import Path

import numpy as np
import pytest
from ovito.data import DataCollection, ParticleType

# The training-data generators are scripts of the repository, not modules of the installed package.
# Appended, so that the installed (compiled) ovito_mlclass keeps precedence over the source tree.
sys.path.append(str(Path(__file__).resolve().parents[1] / "training_data"))

FCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
BCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
HCP_BASIS = np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])


def hexagonal_cell(a=1.0, c_over_a=np.sqrt(8 / 3)):
    """Rows are the cell vectors."""
    return np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c_over_a * a]])


def make_data(positions, cell_rows, pbc=(True, True, True), types=None, type_names=None):
    """A DataCollection from positions and a cell given as rows (OVITO stores columns)."""
    data = DataCollection()
    data.create_cell(np.asarray(cell_rows, dtype=float).T, pbc=pbc)
    particles = data.create_particles(count=len(positions))
    particles.create_property("Position", data=np.asarray(positions, dtype=float))
    if types is not None:
        prop = particles.create_property("Particle Type", data=np.asarray(types) + 1)
        for k, name in enumerate(type_names):
            prop.types.append(ParticleType(id=k + 1, name=name))
    return data


def lattice(basis, cell_rows, repeat, sigma=0.0, seed=0):
    """Positions and cell (rows) of a repeated unit cell, with Gaussian displacements."""
    repeat = np.broadcast_to(repeat, 3)
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in repeat], indexing="ij"), -1).reshape(-1, 3)
    frac = (grid[:, None, :] + basis[None]).reshape(-1, 3)
    positions = frac @ cell_rows
    positions += np.random.default_rng(seed).normal(0.0, sigma, positions.shape)
    return positions, cell_rows * repeat[:, None]


def crystal(kind, repeat=4, sigma=0.0, seed=0):
    """Thermally disordered (sigma in units of the lattice constant) fcc, bcc or hcp crystal."""
    if kind == "fcc":
        positions, cell = lattice(FCC_BASIS, np.eye(3), repeat, sigma, seed)
    elif kind == "bcc":
        positions, cell = lattice(BCC_BASIS, np.eye(3), repeat, sigma, seed)
    elif kind == "hcp":
        positions, cell = lattice(HCP_BASIS, hexagonal_cell(), (repeat, repeat, max(2, repeat * 2 // 3)), sigma, seed)
    else:
        raise ValueError(kind)
    return make_data(positions, cell)


def triclinic(sigma=0.04, seed=3):
    """A sheared, non-orthogonal periodic fcc cell."""
    cell = np.array([[4.0, 0.0, 0.0], [1.3, 4.2, 0.0], [-0.7, 0.9, 3.8]])
    positions, cell = lattice(FCC_BASIS, cell, (3, 3, 3), sigma, seed)
    return make_data(positions, cell)


def icosahedron(scale=1.0, centre=10.0):
    """The 13-atom icosahedral cluster in a large non-periodic box."""
    phi = (1 + 5 ** 0.5) / 2
    vertices = []
    for s1 in (1, -1):
        for s2 in (1, -1):
            vertices += [[0, s1, s2 * phi], [s1, s2 * phi, 0], [s2 * phi, 0, s1]]
    positions = np.vstack([[0, 0, 0], np.array(vertices) * scale]) + centre
    return make_data(positions, np.eye(3) * 2 * centre, pbc=(False, False, False))


def random_rotation(seed=0):
    q = np.random.default_rng(seed).normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
    ])


def transformed_copies(data, seed=0):
    """(name, data, index map) for the transformations every descriptor must be invariant to:
    rotation of positions and cell, translation, permutation of atoms, and wrapping atoms into
    other periodic images. ``index map`` gives, for each atom of the copy, its original index."""
    positions = np.asarray(data.particles.positions)
    cell_rows = np.asarray(data.cell)[:, :3].T
    n = len(positions)
    rng = np.random.default_rng(seed)
    identity = np.arange(n)
    rotation = random_rotation(seed)
    permutation = rng.permutation(n)
    images = rng.integers(-2, 3, size=(n, 3))
    return [
        ("rotation", make_data(positions @ rotation.T, cell_rows @ rotation.T), identity),
        ("translation", make_data(positions + rng.normal(size=3) * 7.3, cell_rows), identity),
        ("permutation", make_data(positions[permutation], cell_rows), permutation),
        ("periodic image", make_data(positions + images @ cell_rows, cell_rows), identity),
    ]


# the start of a config of a model of the toy dataset (write_toy_dataset); tests add its name and features
TOY_CONFIG_HEAD = '''classes = ["FCC", "BCC"]
seed = 5
[data]
datasets = ["toy"]
[features]
'''


def write_toy_dataset(root, name):
    """A tiny training set in ``root/name/{train,val}``: fcc and bcc with thermal noise (0.03-0.05 a),
    the first 10 bcc atoms of every snapshot unlabelled (NO_LABEL)."""
    from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot

    for split, seeds in (("train", (1, 2, 3)), ("val", (7,))):
        for seed in seeds:
            for k, kind in enumerate(("fcc", "bcc")):
                data = crystal(kind, 4, sigma=0.03 + 0.01 * (seed % 3), seed=seed)
                labels = np.full(data.particles.count, k)
                labels[:10 * k] = NO_LABEL
                Snapshot(np.asarray(data.particles.positions), np.asarray(data.cell), (True,) * 3, labels,
                         ("FCC", "BCC"), meta={"kind": "crystal", "lattice": kind.upper()}).save(
                    root / name / split / f"{kind}-{seed}.npz")


def cli_error(argv, capsys) -> str:
    """The one line the command line prints for a failure it anticipates (exit status 2)."""
    from ovito_mlclass.cli import main

    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ovito-mlclass: "), lines
    return lines[0]


@pytest.fixture(params=["fcc", "bcc", "hcp"])
def hot_crystal(request):
    return crystal(request.param, repeat=4, sigma=0.06, seed=7)


def run_python(code: str, timeout: float = 300, **kwargs):
    """Run code in a fresh interpreter, outside the repository: run from the repository root,
    `python -c` would import the source tree (without the compiled kernel) instead of the
    installed package."""
    import subprocess
    import sys
    import tempfile
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir(), **kwargs)
