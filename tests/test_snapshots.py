"""The snapshot file format: round trip, validation, corrupt files, OVITO conversion."""
import numpy as np
import pytest

from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot


def make(n=6, **kw):
    rng = np.random.default_rng(1)
    cell = np.hstack([np.diag([3.0, 4.0, 5.0]), [[0.5], [0.0], [-1.0]]])
    args = dict(positions=rng.random((n, 3)), cell=cell, pbc=(True, True, False),
                labels=[0, 1, NO_LABEL, 0, 1, 0][:n], classes=("FCC", "Liquid"),
                species=np.arange(n) % 2 + 1, extra={"fk_coordination": np.full(n, 12)},
                meta={"system": "test", "temperature_K": 300.0})
    args.update(kw)
    return Snapshot(**args)


def test_round_trip(tmp_path):
    s = make()
    t = Snapshot.load(s.save(tmp_path / "a" / "s.npz"))
    np.testing.assert_array_equal(t.positions, s.positions)
    np.testing.assert_array_equal(t.cell, s.cell)
    np.testing.assert_array_equal(t.labels, s.labels)
    np.testing.assert_array_equal(t.species, s.species)
    np.testing.assert_array_equal(t.extra["fk_coordination"], s.extra["fk_coordination"])
    assert t.pbc == s.pbc and t.classes == s.classes and t.meta == s.meta
    assert not list((tmp_path / "a").glob("*.part"))


def test_to_data_collection_matches_arrays():
    s = make()
    data = s.to_data_collection()
    np.testing.assert_array_equal(np.asarray(data.cell), s.cell)
    assert tuple(data.cell.pbc) == s.pbc
    np.testing.assert_array_equal(data.particles.positions, s.positions)
    np.testing.assert_array_equal(data.particles["Label"], s.labels)
    np.testing.assert_array_equal(data.particles.particle_types, s.species)


@pytest.mark.parametrize("bad, message", [
    (dict(labels=[0, 1, 2, 0, 0, 0]), "labels must lie"),
    (dict(labels=[0, 1]), "labels must have shape"),
    (dict(cell=np.eye(3)), "cell must be"),
    (dict(positions=np.zeros((6, 2))), "positions must have shape"),
    (dict(extra={"x": np.zeros(2)}), "extra array"),
    (dict(meta={"x": object()}), "not JSON serializable"),
])
def test_invalid_snapshot_is_rejected(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(**bad)


def test_corrupt_and_truncated_files(tmp_path):
    path = make().save(tmp_path / "s.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:200])
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    for name in ("cut.npz", "junk.npz", "missing.npz"):
        with pytest.raises(ValueError, match="not a readable snapshot"):
            Snapshot.load(tmp_path / name)
