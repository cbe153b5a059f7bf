"""Work arrays kept from one frame to the next: handed out again only when nothing refers to them,
so a result the caller keeps is never overwritten; the results are those of fresh arrays."""
import threading
import time

import numpy as np
import pytest

from conftest import crystal
from ovito_mlclass import _compiled, classify
from ovito_mlclass import neighbors as nb
from ovito_mlclass.features import FeatureSpec
from ovito_mlclass.frames import as_frame
from ovito_mlclass.work_arrays import WORK, WorkArrays

SPEC = FeatureSpec(blocks=({"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6], "averaged": True, "wl": False},
                           {"kind": "distances", "neighbors": 14, "normalize": 12}))


@pytest.fixture
def fresh_arrays(monkeypatch):
    """The shared work arrays switched off: every call makes new ones (the reference)."""
    def compute(spec, data, **kwargs):
        monkeypatch.setattr(WORK, "max_bytes", 0)
        WORK.clear()
        try:
            return spec.compute(data, **kwargs)
        finally:
            monkeypatch.undo()
    return compute


def test_an_array_is_handed_out_again_only_when_nothing_refers_to_it():
    work = WorkArrays(max_bytes=1 << 30)
    first = work.empty("a", (10, 3))
    first[:] = 1.0
    second = work.empty("a", (10, 3))  # the caller still holds the first: a new one
    assert second is not first
    view = second[2:5]
    del second
    third = work.empty("a", (10, 3))  # a view still refers to the second: a new one
    assert not np.shares_memory(third, view) and not np.shares_memory(third, first)
    third_id = id(third)
    del third
    assert id(work.empty("a", (10, 3))) == third_id  # nothing refers to it: the same array comes back
    assert work.empty("a", (10, 4)).shape == (10, 4) and work.empty("a", (10, 4), np.int64).dtype == np.int64
    np.testing.assert_array_equal(first, 1.0)


def test_nothing_is_kept_beyond_its_limits():
    assert WorkArrays(max_bytes=0).empty("a", (1000,)) is not None and WorkArrays(max_bytes=0).kept_bytes == 0
    work = WorkArrays(max_bytes=8000)
    work.empty("a", (1000,))
    work.empty("b", (1000,))  # would exceed the limit: handed out, not kept
    assert work.kept_bytes == 8000
    brief = WorkArrays(keep_seconds=0.05, max_bytes=1 << 20)
    brief.empty("a", (1000,))
    assert brief.kept_bytes == 8000
    deadline = time.monotonic() + 5.0
    while brief.kept_bytes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert brief.kept_bytes == 0  # let go after keep_seconds without use


def test_kept_results_are_never_overwritten(fresh_arrays):
    a, b = crystal("fcc", 4, sigma=0.03, seed=1), crystal("fcc", 4, sigma=0.05, seed=2)
    reference_a, reference_b = fresh_arrays(SPEC, a), fresh_arrays(SPEC, b)
    features_a, rows_a, vectors_a = SPEC.compute(a, neighbors=14, vectors=True)
    saved = features_a.copy(), rows_a.copy(), vectors_a.copy()
    for _ in range(2):  # while the first results are held, others are computed on a frame of the same size
        np.testing.assert_array_equal(SPEC.compute(b), reference_b)
    for held, copy in zip((features_a, rows_a, vectors_a), saved):
        np.testing.assert_array_equal(held, copy)
    np.testing.assert_array_equal(features_a, reference_a)


def test_reused_arrays_give_the_results_of_fresh_ones(fresh_arrays):
    frames = [crystal("bcc", 5, sigma=s, seed=i) for i, s in enumerate((0.02, 0.06, 0.1))]
    for data in frames + frames[::-1]:
        np.testing.assert_array_equal(SPEC.compute(data), fresh_arrays(SPEC, data))


def test_a_kept_classification_is_not_overwritten_by_the_next():
    a, b = crystal("fcc", 4, sigma=0.03, seed=3), crystal("bcc", 4, sigma=0.03, seed=4)
    first = classify.classify(a, "openworld")
    saved = first.types.copy(), first.posteriors.neighbors.copy(), first.posteriors.probabilities.copy()
    classify.classify(b, "openworld")
    np.testing.assert_array_equal(first.types, saved[0])
    np.testing.assert_array_equal(first.posteriors.neighbors, saved[1])
    np.testing.assert_array_equal(first.posteriors.probabilities, saved[2])


def test_threads_computing_at_once_get_their_own_arrays(fresh_arrays):
    frames = [crystal("fcc", 4, sigma=0.02 * (i + 1), seed=i) for i in range(4)]
    references = [fresh_arrays(SPEC, data) for data in frames]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = SPEC.compute(as_frame(frames[i]))
                np.testing.assert_array_equal(results[i], references[i])
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, reference in enumerate(references):
        np.testing.assert_array_equal(results[i], reference)


@pytest.mark.skipif(not _compiled.COMPILED, reason="the compiled kernel's blocks")
def test_the_kernels_keep_their_blocks_for_the_next_frame_and_let_go_with_the_work_arrays():
    """A search of 157,216 atoms keeps its bins and sorted positions (blocks of 1.2 MB and more) for
    the next search of that size; searches reusing them, also two threads at once, give what searches
    on fresh memory give; WORK.clear() lets go of them."""
    frames = [crystal("fcc", 34, sigma=s, seed=i) for i, s in enumerate((0.02, 0.08))]
    WORK.clear()
    assert _compiled.kernels.kept_block_bytes() == 0
    fresh = []
    for data in frames:
        found = nb.nearest_neighbors(data, 12)
        assert _compiled.kernels.kept_block_bytes() > 0
        fresh.append((found.neighbors.copy(), found.vectors.copy()))
        WORK.clear()
    errors = []

    def search(i):
        try:
            for _ in range(3):
                found = nb.nearest_neighbors(frames[i], 12)
                np.testing.assert_array_equal(found.neighbors, fresh[i][0])
                np.testing.assert_array_equal(found.vectors, fresh[i][1])
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    search(1), search(0)
    threads = [threading.Thread(target=search, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _compiled.kernels.kept_block_bytes() > 0
    WORK.clear()
    assert _compiled.kernels.kept_block_bytes() == 0


@pytest.mark.skipif(not _compiled.COMPILED, reason="the compiled kernel's blocks")
def test_the_kept_blocks_do_not_pile_up_frame_after_frame():
    """Classifying frames of one size again and again keeps the same blocks: the second frame's
    take the first's place (a thread's scratch, whose size varies, is never kept)."""
    frames = [crystal("fcc", 34, sigma=s, seed=i) for i, s in enumerate((0.05, 0.1, 0.15))]
    WORK.clear()
    kept = []
    for data in frames + frames:
        classify.classify(data, "openworld")
        kept.append(_compiled.kernels.kept_block_bytes())
    assert kept[0] > 0 and len(set(kept[1:])) == 1 and kept[-1] <= 2 * kept[0], kept
    WORK.clear()


@pytest.mark.skipif(not _compiled.COMPILED, reason="the compiled kernel's search")
def test_the_search_writes_into_given_arrays_of_the_right_kind():
    frame = as_frame(crystal("hcp", 3, sigma=0.04, seed=5))
    n, k = frame.count, 12
    expected = nb.nearest_neighbors(frame, k)
    rows, vectors = np.full((n, k), 7, np.int64), np.full((n, k, 3), 7.0)
    found = nb.nearest_neighbors(frame, k, out=(rows, vectors))
    assert found.neighbors.base is rows or np.shares_memory(found.neighbors, rows)
    np.testing.assert_array_equal(rows.reshape(-1), expected.neighbors)
    np.testing.assert_array_equal(vectors.reshape(-1, 3), expected.vectors)
    cell, pbc = frame.kernel_geometry()
    for bad_rows, bad_vectors in [(np.empty((n, k), np.int32), vectors), (rows, np.empty((n, k, 3), np.float32)),
                                  (np.empty((n, k + 1), np.int64), vectors), (rows[::2], vectors[::2]),
                                  (np.asfortranarray(np.empty((n, k), np.int64)), vectors)]:
        with pytest.raises((TypeError, ValueError)):
            _compiled.kernels.nearest_neighbors(frame.positions, cell, pbc, k, out_neighbors=bad_rows,
                                                out_vectors=bad_vectors)


def test_without_the_compiled_kernel_the_search_fills_the_given_arrays(monkeypatch):
    frame = crystal("bcc", 3, sigma=0.04, seed=6)
    n, k = frame.particles.count, 14
    expected = nb.nearest_neighbors(frame, k)  # the compiled search, equal to OVITO's finder (test_neighbors.py)
    monkeypatch.setattr(_compiled, "COMPILED", False)  # OVITO's NearestNeighborFinder
    rows, vectors = np.full((n, k), 7, np.int64), np.full((n, k, 3), 7.0)
    found = nb.nearest_neighbors(frame, k, out=(rows, vectors))
    assert np.shares_memory(found.neighbors, rows) and np.shares_memory(found.vectors, vectors)
    d_found, d_expected = (np.linalg.norm(v.reshape(n, k, 3), axis=2) for v in (vectors, expected.vectors))
    np.testing.assert_allclose(d_found, d_expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.sort(rows, axis=1), np.sort(expected.neighbors.reshape(n, k), axis=1))
