"""Y_lm and the 3j coupling coefficients against scipy and sympy."""
import numpy as np
import pytest
from scipy.special import sph_harm_y
from sympy.physics.wigner import wigner_3j

from ovito_mlclass.descriptors import reference
from ovito_mlclass._compiled import kernels
from ovito_mlclass.descriptors.wigner import wigner_3j_lll

LMAX = 16


def directions():
    rng = np.random.default_rng(0)
    random = rng.normal(size=(300, 3)) * rng.uniform(0.1, 10, size=(300, 1))
    poles = [[0, 0, 1], [0, 0, -1], [0, 0, 3.7], [0, 0, -0.2], [1e-9, 0, 1], [1, 0, 0], [0, -2, 0]]
    return np.vstack([random, poles])


@pytest.mark.parametrize("implementation", [kernels, reference], ids=["c++", "numba"])
def test_ylm_equals_scipy_including_poles(implementation):
    v = directions()
    theta, phi = np.arctan2(np.hypot(v[:, 0], v[:, 1]), v[:, 2]), np.arctan2(v[:, 1], v[:, 0])
    values = implementation.spherical_harmonics(v, LMAX)
    for l in range(LMAX + 1):
        for m in range(-l, l + 1):
            np.testing.assert_allclose(values[:, l * l + l + m], sph_harm_y(l, m, theta, phi), rtol=0, atol=1e-12,
                                       err_msg=f"l={l} m={m}")


def test_compiled_ylm_equals_numba_reference():
    v = directions()
    np.testing.assert_allclose(kernels.spherical_harmonics(v, LMAX), reference.spherical_harmonics(v, LMAX),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("l", [2, 3, 4, 6, 9, 12, 16])
def test_wigner_3j_equals_sympy(l):
    for m1 in range(-l, l + 1):
        for m2 in range(-l, l + 1):
            m3 = -m1 - m2
            if abs(m3) <= l:
                assert wigner_3j_lll(l, m1, m2, m3) == pytest.approx(float(wigner_3j(l, l, l, m1, m2, m3)),
                                                                     abs=1e-15)
