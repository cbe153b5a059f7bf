// Python bindings: shape checks here, arithmetic in the kernels, the GIL released while they run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>

#include <complex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "spherical_harmonics.hpp"

namespace py = pybind11;
using namespace mlclass;

template <typename T>
using Input = py::array_t<T, py::array::c_style | py::array::forcecast>;
// Outputs are written in place and must already have the right type and layout.
using Output = py::array_t<double, py::array::c_style>;

namespace {

void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}
// Literal messages: no std::string is built for checks that pass (some run once per atom or bond).
void require(bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
}

// Checks the CSR offsets and bond vectors; returns the number of atoms.
int64_t check_csr(const Input<int64_t>& offsets, const Input<double>& vectors, int64_t n_bonds) {
    require(offsets.ndim() == 1 && offsets.shape(0) >= 1, "offsets must be a 1-d array of length n_atoms + 1");
    const int64_t n = offsets.shape(0) - 1;
    require(vectors.ndim() == 2 && vectors.shape(0) == n_bonds && vectors.shape(1) == 3,
            "vectors must have shape (n_bonds, 3)");
    const int64_t* off = offsets.data();
    require(off[0] == 0 && off[n] == n_bonds, "offsets must start at 0 and end at n_bonds");
    for (int64_t i = 0; i < n; ++i) require(off[i] <= off[i + 1], "offsets must be non-decreasing");
    return n;
}

// A buffer handed to NumPy without a copy.
template <typename T>
py::array_t<T> to_array(Buffer<T>&& values) {
    auto* owned = new Buffer<T>(std::move(values));
    py::capsule owner(owned, [](void* p) { delete static_cast<Buffer<T>*>(p); });
    return py::array_t<T>(py::ssize_t(owned->size()), owned->data(), owner);
}

// A torch weight matrix (out, in), row-major, transposed to (in, out) as the dense layers read it.
std::vector<float> transposed(const Input<float>& w) {
    const int64_t out = w.shape(0), in = w.shape(1);
    std::vector<float> t(size_t(in * out));
    for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) t[size_t(i * out + o)] = w.data()[o * in + i];
    return t;
}

// Bins as Python sees them: (order, start, shape, periodic).
py::tuple bins_to_python(BinGrid&& bins) {
    return py::make_tuple(to_array(std::move(bins.order)), to_array(std::move(bins.start)),
                          py::make_tuple(bins.shape[0], bins.shape[1], bins.shape[2]),
                          py::make_tuple(bins.periodic[0], bins.periodic[1], bins.periodic[2]));
}

// The bins given from Python, checked: every atom in exactly one bin.
struct BinsInput {
    Input<int64_t> order, start;
    SpatialBins view;
};
void bins_from_python(const py::object& bins, int64_t n, BinsInput& in) {
    if (bins.is_none()) return;
    const py::tuple t = py::reinterpret_borrow<py::tuple>(bins);
    require(py::len(t) == 4, "bins must be (order, start, shape, periodic)");
    in.order = Input<int64_t>::ensure(t[0]);
    in.start = Input<int64_t>::ensure(t[1]);
    const auto shape = t[2].cast<std::array<int, 3>>();
    const auto periodic = t[3].cast<std::array<bool, 3>>();
    require(in.order && in.order.ndim() == 1 && in.order.shape(0) == n, "bins: order must have one entry per atom");
    int64_t n_bins = 1;
    for (int d = 0; d < 3; ++d) {
        require(shape[d] >= 1, "bins: the shape must be positive");
        n_bins *= shape[d];
    }
    require(in.start && in.start.ndim() == 1 && in.start.shape(0) == n_bins + 1, "bins: start must have n_bins + 1 entries");
    const int64_t* start = in.start.data();
    require(start[0] == 0 && start[n_bins] == n, "bins: start must run from 0 to n_atoms");
    for (int64_t b = 0; b < n_bins; ++b) require(start[b] <= start[b + 1], "bins: start must be non-decreasing");
    std::vector<unsigned char> seen(n, 0);
    for (int64_t k = 0; k < n; ++k) {
        const int64_t i = in.order.data()[k];
        require(i >= 0 && i < n && !seen[i], "bins: order must be a permutation of 0..n_atoms-1");
        seen[i] = 1;
    }
    in.view.order = in.order.data();
    in.view.start = start;
    for (int d = 0; d < 3; ++d) in.view.shape[d] = shape[d], in.view.periodic[d] = periodic[d];
}

NeighborList neighbor_list(const Input<int64_t>& offsets, const Input<int64_t>& neighbors, const Input<double>& vectors,
                           const py::object& weights, Input<double>& weights_buffer, int64_t first = -1) {
    const int64_t n_bonds = neighbors.ndim() == 1 ? neighbors.shape(0) : -1;
    require(n_bonds >= 0, "neighbors must be a 1-d array");
    const int64_t n = check_csr(offsets, vectors, n_bonds);
    const int64_t* off = offsets.data();
    const int64_t* nb = neighbors.data();
    const int64_t take = first < 0 ? INT64_MAX : first;  // the bonds that count: the first `take` of each row
    for (int64_t i = 0; i < n; ++i)
        for (int64_t b = off[i]; b < off[i] + std::min(off[i + 1] - off[i], take); ++b)
            require(nb[b] >= 0 && nb[b] < n, "neighbour index out of range");
    const double* w = nullptr;
    if (!weights.is_none()) {
        weights_buffer = Input<double>::ensure(weights);
        require(weights_buffer && weights_buffer.ndim() == 1 && weights_buffer.shape(0) == n_bonds,
                "weights must be a 1-d array of length n_bonds");
        w = weights_buffer.data();
    }
    return NeighborList{n, off, nb, vectors.data(), w, take};
}

// Positions (n, 3), the (3, 4) cell matrix and the pbc flags of a neighbour search.
void check_structure(const Input<double>& positions, const Input<double>& cell) {
    require(positions.ndim() == 2 && positions.shape(1) == 3, "positions must have shape (n, 3)");
    require(cell.ndim() == 2 && cell.shape(0) == 3 && cell.shape(1) == 4,
            "cell must have shape (3, 4): cell vectors as columns 0-2, origin as column 3");
    const double* p = positions.data();
    bool finite = true;
    for (int64_t i = 0; i < 3 * positions.shape(0); ++i) finite &= std::isfinite(p[i]);
    require(finite, "positions must be finite");
    for (int i = 0; i < 12; ++i) require(std::isfinite(cell.data()[i]), "cell must be finite");
}

void check_output(const Output& out, int64_t rows, int64_t cols) {
    require(out.ndim() == 2 && out.shape(0) == rows && out.shape(1) == cols,
            "out must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
    require(out.writeable(), "out must be writeable");
}

// An output of shape (rows, cols) whose rows are contiguous but may lie inside a wider array (a
// block of columns of a feature matrix): (first element, doubles from one row to the next). Bound
// with noconvert(), so that an array of another type is refused rather than silently copied.
std::pair<double*, int64_t> strided_output(py::array_t<double>& out, int64_t rows, int64_t cols) {
    constexpr int64_t size = sizeof(double);
    require(out.ndim() == 2 && out.shape(0) == rows && out.shape(1) == cols,
            "out must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
    require(out.writeable(), "out must be writeable");
    require((cols <= 1 || out.strides(1) == size) && out.strides(0) % size == 0 && out.strides(0) >= cols * size,
            "out must have contiguous, non-overlapping rows");
    return {out.mutable_data(), out.strides(0) / size};
}

// Rows of a nearest-neighbour search, each row contiguous, possibly the first columns of a wider one:
// indices (n, k >= k_min) in [-1, n - 1] and vectors (n, k, 3); returns the row strides (elements).
std::pair<int64_t, int64_t> neighbour_rows(const py::array_t<int64_t>& rows, const py::array_t<double>& vectors,
                                           int k_min) {
    constexpr int64_t index_size = sizeof(int64_t), size = sizeof(double);
    require(rows.ndim() == 2 && rows.shape(1) >= k_min && rows.strides(1) == index_size &&
                rows.strides(0) % index_size == 0 && rows.strides(0) >= rows.shape(1) * index_size,
            "rows (n, k) of the nearest neighbours, each row contiguous, expected (k >= " + std::to_string(k_min) + ")");
    require(vectors.ndim() == 3 && vectors.shape(0) == rows.shape(0) && vectors.shape(1) == rows.shape(1) &&
                vectors.shape(2) == 3 && vectors.strides(2) == size && vectors.strides(1) == 3 * size &&
                vectors.strides(0) % size == 0 && vectors.strides(0) >= 3 * rows.shape(1) * size,
            "vectors (n, k, 3) to the nearest neighbours, each row contiguous, expected");
    const int64_t n = rows.shape(0), k = rows.shape(1), row_stride = rows.strides(0) / index_size;
    const int64_t* index = rows.data();
    for (int64_t i = 0; i < n; ++i)
        for (int64_t a = 0; a < k; ++a)
            require(index[row_stride * i + a] >= -1 && index[row_stride * i + a] < n,
                    "neighbour indices must lie in [-1, n - 1]");
    return {row_stride, vectors.strides(0) / size};
}

}  // namespace

template <typename T>
void define_neighbor_mean(py::module_& m) {
    m.def(
        "neighbor_mean",
        [](Input<T> h, Input<int64_t> neighbors) {
            require(h.ndim() == 2 && neighbors.ndim() == 2 && neighbors.shape(0) == h.shape(0),
                    "h (n, features) and neighbors (n, k) expected");
            const int64_t n = h.shape(0);
            const int64_t* index = neighbors.data();
            for (int64_t m = 0; m < neighbors.size(); ++m)
                require(index[m] >= -1 && index[m] < n, "neighbour indices must lie in [-1, n - 1]");
            py::array_t<T> out({n, h.shape(1)});
            T* dst = out.mutable_data();
            const T* src = h.data();
            {
                py::gil_scoped_release release;
                neighbor_mean(n, int(h.shape(1)), src, int(neighbors.shape(1)), index, dst);
            }
            return out;
        },
        py::arg("h"), py::arg("neighbors"),
        "Row i: the mean of row i of h and the rows neighbors[i] of h (-1: missing, left out).");
}

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "Compiled kernels of ovito_mlclass (neighbour search, spherical harmonics, Steinhardt, symmetry functions, Voronoi face areas).";
    m.attr("MAX_DEGREE") = kMaxDegree;
    py::register_exception<CellsTooLarge>(m, "CellsTooLarge", PyExc_RuntimeError);
    // an allocation that failed, with its size (std::bad_alloc, without one, is pybind11's MemoryError too)
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const OutOfMemory& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });

    m.def("max_threads", &max_threads, "Number of OpenMP threads the kernels use (1 without OpenMP).");
    m.def("release_blocks", [] { BlockCache::instance().release(); },
          "Lets go of the large blocks of memory the kernels keep for their next call of the same size.");
    m.def("kept_block_bytes", [] { return BlockCache::instance().kept_bytes(); },
          "Bytes of memory the kernels keep for their next call (release_blocks lets go of them).");

    m.def(
        "point_cloud",
        [](Input<double> vectors, int k_max, int k, int normalize, py::array_t<double> out) {
            require(vectors.ndim() == 2 && vectors.shape(1) == 3 && k_max >= 1 && vectors.shape(0) % k_max == 0,
                    "vectors (n * k_max, 3) of a k_max-nearest list expected");
            require(k >= 1 && k <= k_max && normalize >= 1 && normalize <= k, "need 1 <= normalize <= k <= k_max");
            const int64_t n = vectors.shape(0) / k_max;
            const auto [dst, stride] = strided_output(out, n, 3 * int64_t(k));
            const double* v = vectors.data();
            {
                py::gil_scoped_release release;
                point_cloud(n, k_max, k, normalize, v, dst, stride);
            }
        },
        py::arg("vectors"), py::arg("k_max"), py::arg("k"), py::arg("normalize"), py::arg("out").noconvert(),
        "PointNet input, written into `out` (n, 3k): the first k neighbour vectors of every atom (all present) over "
        "its mean distance to its first `normalize` neighbours.");

    m.def(
        "pointnet_embed",
        [](Input<double> clouds, int n_points, Input<float> first_weight, Input<float> first_bias,
           std::vector<Input<float>> weights, std::vector<Input<float>> biases, double align_radius) {
            require(n_points >= 1 && clouds.ndim() == 2 && clouds.shape(1) == 3 * int64_t(n_points),
                    "clouds must have shape (n, 3 * n_points)");
            require(first_weight.ndim() == 2 && first_weight.shape(1) == 4 && first_bias.ndim() == 1 &&
                        first_bias.shape(0) == first_weight.shape(0),
                    "the first layer needs a (width, 4) weight and a (width,) bias");
            require(weights.size() == biases.size(), "one bias per weight matrix");
            PointNetWeights net;
            net.first_width = int(first_weight.shape(0));
            net.first_weight = first_weight.data();
            net.first_bias = first_bias.data();
            // torch keeps (out, in); the kernel wants (in, out): transposed copies, kept alive here
            std::vector<std::vector<float>> transposed_weights;
            int width = net.first_width;
            for (size_t l = 0; l < weights.size(); ++l) {
                const auto& w = weights[l];
                require(w.ndim() == 2 && w.shape(1) == width && biases[l].ndim() == 1 && biases[l].shape(0) == w.shape(0),
                        "layer " + std::to_string(l + 1) + ": weight (out, " + std::to_string(width) +
                            ") and bias (out,) expected");
                transposed_weights.push_back(transposed(w));
                net.widths.push_back(int(w.shape(0)));
                net.biases.push_back(biases[l].data());
                width = int(w.shape(0));
            }
            for (const auto& t : transposed_weights) net.weights_t.push_back(t.data());
            const int64_t n = clouds.shape(0);
            py::array_t<float> out({n, int64_t(width)});
            float* dst = out.mutable_data();
            const double* src = clouds.data();
            {
                py::gil_scoped_release release;
                pointnet_embed(n, n_points, src, 3 * int64_t(n_points), net, float(align_radius), dst);
            }
            return out;
        },
        py::arg("clouds"), py::arg("n_points"), py::arg("first_weight"), py::arg("first_bias"), py::arg("weights"),
        py::arg("biases"), py::arg("align_radius"),
        "PointNet.embed (training/network.py) of every row of `clouds`, float32 (n, last width): the first layer on "
        "(x, y, z, |r|) in each cloud's own frame (align_radius > 0), the ReLU layers, the max over the points.");

    m.def(
        "structure_net",
        [](Input<double> features, Input<float> mean, Input<float> inv_std, std::vector<Input<float>> weights,
           std::vector<Input<float>> biases, Input<float> class_weight, Input<float> class_bias, Input<float> site_weight,
           Input<float> site_bias, int n_sites, std::optional<Input<float>> novelty_means,
           std::optional<Input<float>> novelty_factors, std::optional<Input<float>> novelty_scales) {
            require(features.ndim() == 2, "features must have shape (n, n_features)");
            const int64_t n = features.shape(0), F = features.shape(1);
            require(mean.ndim() == 1 && mean.shape(0) == F && inv_std.ndim() == 1 && inv_std.shape(0) == F,
                    "mean and inv_std need one value per feature");
            require(weights.size() == biases.size(), "one bias per weight matrix");
            StructureNetWeights net;
            net.n_features = int(F);
            net.mean = mean.data(), net.inv_std = inv_std.data();
            int64_t width = F;
            auto check_layer = [&](const Input<float>& w, const Input<float>& b, const std::string& what) {
                require(w.ndim() == 2 && w.shape(1) == width && b.ndim() == 1 && b.shape(0) == w.shape(0),
                        what + ": weight (out, " + std::to_string(width) + ") and bias (out,) expected");
            };
            for (size_t l = 0; l < weights.size(); ++l) {
                check_layer(weights[l], biases[l], "layer " + std::to_string(l + 1));
                net.widths.push_back(int(weights[l].shape(0)));
                net.weights.push_back(weights[l].data()), net.biases.push_back(biases[l].data());
                width = weights[l].shape(0);
            }
            check_layer(class_weight, class_bias, "class layer");
            check_layer(site_weight, site_bias, "site layer");
            require(class_weight.shape(0) >= 1, "the class layer needs an output");
            require(n_sites >= 0 && n_sites <= site_weight.shape(0), "n_sites exceeds the site layer's outputs");
            net.n_classes = int(class_weight.shape(0)), net.n_sites = n_sites;
            net.class_weight = class_weight.data(), net.class_bias = class_bias.data();
            net.site_weight = site_weight.data(), net.site_bias = site_bias.data();
            const bool with_novelty = novelty_means.has_value();
            require(with_novelty == novelty_factors.has_value() && with_novelty == novelty_scales.has_value(),
                    "novelty needs means, factors and scales");
            if (with_novelty) {
                const int64_t C = net.n_classes;
                require(novelty_means->ndim() == 2 && novelty_means->shape(0) == C && novelty_means->shape(1) == F &&
                            novelty_factors->ndim() == 3 && novelty_factors->shape(0) == C &&
                            novelty_factors->shape(1) == F && novelty_factors->shape(2) == F &&
                            novelty_scales->ndim() == 1 && novelty_scales->shape(0) == C,
                        "novelty: means (C, F), factors (C, F, F) and scales (C,) expected");
                net.novelty_means = novelty_means->data(), net.novelty_factors = novelty_factors->data();
                net.novelty_scales = novelty_scales->data();
            }
            py::array_t<float> probs({n, int64_t(net.n_classes)}), sites({n, int64_t(n_sites)});
            py::array_t<float> novelty(with_novelty ? n : 0), confidence(n);
            py::array_t<int32_t> most_probable(n);
            float *p = probs.mutable_data(), *s = sites.mutable_data(), *v = with_novelty ? novelty.mutable_data() : nullptr;
            const double* x = features.data();
            {
                py::gil_scoped_release release;
                structure_net(n, x, net, p, s, v, most_probable.mutable_data(), confidence.mutable_data());
            }
            return py::make_tuple(probs, n_sites ? py::object(sites) : py::none(),
                                  with_novelty ? py::object(novelty) : py::none(), most_probable, confidence);
        },
        py::arg("features"), py::arg("mean"), py::arg("inv_std"), py::arg("weights"), py::arg("biases"),
        py::arg("class_weight"), py::arg("class_bias"), py::arg("site_weight"), py::arg("site_bias"), py::arg("n_sites"),
        py::arg("novelty_means") = py::none(), py::arg("novelty_factors") = py::none(),
        py::arg("novelty_scales") = py::none(),
        "StructureNet (training/network.py) on every row of `features`: (class posteriors (n, C) float32, site "
        "posteriors (n, n_sites) or None, novelty (n,) or None, most probable class (n,) int32 (the first of "
        "equal maxima), its posterior (n,) float32), the hidden layers each followed by SiLU.");

    define_neighbor_mean<float>(m);
    define_neighbor_mean<double>(m);  // overloads: pybind11 picks by the array type

    m.def(
        "diamond_second_shells",
        [](py::array_t<int64_t> rows, py::array_t<double> vectors) {
            const auto [row_stride, vector_stride] = neighbour_rows(rows, vectors, 4);
            const int64_t n = rows.shape(0);
            py::array_t<int8_t> out(n);
            int8_t* dst = out.mutable_data();
            const double* v = vectors.data();
            {
                py::gil_scoped_release release;
                diamond_second_shells(n, rows.data(), row_stride, v, vector_stride, dst);
            }
            return out;
        },
        py::arg("rows").noconvert(), py::arg("vectors").noconvert(),
        "Identify Diamond's test of every atom's second shell: 1 cubic diamond, 2 hexagonal, 0 neither, from the "
        "first four of every atom's nearest neighbours (rows (n, k >= 4) int64, -1: missing) and the vectors to "
        "them ((n, k, 3) float64); each row contiguous, the rows possibly inside wider ones.");

    m.def(
        "adaptive_cna",
        [](py::array_t<int64_t> rows, py::array_t<double> vectors, std::optional<py::array_t<uint8_t>> which) {
            const auto [row_stride, vector_stride] = neighbour_rows(rows, vectors, 12);
            const int64_t n = rows.shape(0);
            const int k = int(std::min<int64_t>(rows.shape(1), 14));
            const uint8_t* mask = nullptr;
            if (which) {
                require(which->ndim() == 1 && which->shape(0) == n && which->strides(0) == 1,
                        "which must be a contiguous (n,) array of 0 / 1");
                mask = which->data();
            }
            py::array_t<int8_t> out(n);
            int8_t* dst = out.mutable_data();
            {
                py::gil_scoped_release release;
                adaptive_cna(n, k, rows.data(), row_stride, vectors.data(), vector_stride, mask, dst);
            }
            return out;
        },
        py::arg("rows").noconvert(), py::arg("vectors").noconvert(), py::arg("which").noconvert() = py::none(),
        "OVITO's adaptive common neighbour analysis of every atom (of those with which[i] != 0): 1 FCC, 2 HCP, "
        "3 BCC, 4 ICO, 0 Other, from its nearest neighbours (rows (n, k >= 12) int64, -1: missing; 14 for BCC) "
        "and the vectors to them ((n, k, 3) float64); each row contiguous, the rows possibly inside wider ones.");

    m.def(
        "relative_distances",
        [](Input<double> vectors, int k, int normalize, py::array_t<double> out) {
            require(vectors.ndim() == 2 && vectors.shape(1) == 3, "vectors must have shape (n * k, 3)");
            require(k >= 1 && normalize >= 1 && normalize <= k, "need 1 <= normalize <= k");
            require(vectors.shape(0) % k == 0, "the number of vectors must be a multiple of k");
            const int64_t n = vectors.shape(0) / k;
            const auto [dst, stride] = strided_output(out, n, k);
            const double* v = vectors.data();
            py::gil_scoped_release release;
            relative_distances(n, k, normalize, v, dst, stride);
        },
        py::arg("vectors"), py::arg("k"), py::arg("normalize"), py::arg("out").noconvert(),
        "|v| of the k vectors of every atom (rows of a k-nearest list), divided by the atom's mean over its "
        "first `normalize`, written into `out` (n, k) (contiguous rows, possibly inside a wider array).");

    m.def(
        "spherical_harmonics",
        [](Input<double> vectors, int lmax) {
            require(vectors.ndim() == 2 && vectors.shape(1) == 3, "vectors must have shape (n, 3)");
            require(lmax >= 0 && lmax <= kMaxDegree, "lmax must be in 0.." + std::to_string(kMaxDegree));
            const int64_t n = vectors.shape(0);
            py::array_t<std::complex<double>> out({n, int64_t(lmax + 1) * (lmax + 1)});
            double* dst = reinterpret_cast<double*>(out.mutable_data());
            {
                py::gil_scoped_release release;
                spherical_harmonics(n, vectors.data(), lmax, dst);
            }
            return out;
        },
        py::arg("vectors"), py::arg("lmax"),
        "Y_lm of the directions of `vectors`, column l*l + l + m (m = -l..l), scipy's sph_harm_y convention.");

    // One shell of Steinhardt invariants as Python gives it: (first, degrees, with_wl, wigner_start,
    // wigner_m, wigner_coeff, out); the arrays are held here for the length of the call.
    struct ShellInput {
        int64_t first;
        bool with_wl;
        Input<int32_t> degrees;
        Input<int64_t> wigner_start;
        Input<int32_t> wigner_m;
        Input<double> wigner_coeff;
        py::array_t<double> out;
    };
    auto steinhardt_shells = [](Input<int64_t> offsets, Input<int64_t> neighbors, Input<double> vectors,
                                py::object weights, py::object bins, bool averaged, int64_t cache_bytes,
                                const py::list& shells, bool single) {
        require(py::len(shells) >= 1, "at least one shell");
        std::vector<ShellInput> inputs;
        int64_t widest = 0;  // the bonds the widest shell counts (-1: all)
        for (const py::handle& item : shells) {
            const py::tuple shell = py::cast<py::tuple>(item);
            require(shell.size() == 7, "a shell is (first, degrees, with_wl, wigner_start, wigner_m, wigner_coeff, out)");
            const int64_t first = shell[0].cast<int64_t>();
            require(first >= 1 || first == -1, "first must be a positive number of bonds, or -1 (all)");
            widest = (widest < 0 || first < 0) ? -1 : std::max(widest, first);
            // written in place: an array of another type would be converted, and the results lost
            if (!py::isinstance<py::array>(shell[6]) ||
                !py::reinterpret_borrow<py::array>(shell[6]).dtype().is(py::dtype::of<double>()))
                throw py::type_error("out must be a float64 array");
            inputs.push_back(ShellInput{first, shell[2].cast<bool>(), shell[1].cast<Input<int32_t>>(),
                                        shell[3].cast<Input<int64_t>>(),
                                        shell[4].cast<Input<int32_t>>(), shell[5].cast<Input<double>>(),
                                        py::reinterpret_borrow<py::array_t<double>>(shell[6])});
        }
        Input<double> weights_buffer;
        const NeighborList nl = neighbor_list(offsets, neighbors, vectors, weights, weights_buffer, widest);
        BinsInput bins_input;
        bins_from_python(bins, nl.n_atoms, bins_input);
        std::vector<SteinhardtShell> specs;
        for (ShellInput& in : inputs) {
            const int nd = int(in.degrees.size());
            for (int d = 0; d < nd; ++d)
                require(in.degrees.data()[d] >= 0 && in.degrees.data()[d] <= kMaxDegree,
                        "degrees must be in 0.." + std::to_string(kMaxDegree));
            require(in.wigner_start.size() == nd + 1, "wigner_start must have n_degrees + 1 entries");
            const int64_t n_rows = in.wigner_coeff.size();
            require(in.wigner_m.size() == 3 * n_rows && in.wigner_start.data()[nd] == n_rows,
                    "inconsistent Wigner coupling table");
            const int blocks = 1 + in.with_wl + (averaged ? 1 + in.with_wl : 0);
            const auto [dst, stride] = strided_output(in.out, nl.n_atoms, int64_t(blocks) * nd);
            specs.push_back(SteinhardtShell{in.first, in.degrees.data(), nd, in.with_wl,
                                            WignerTable{in.wigner_start.data(), in.wigner_m.data(), in.wigner_coeff.data()},
                                            dst, stride});
        }
        py::gil_scoped_release release;
        steinhardt(nl, bins_input.view, specs, averaged, cache_bytes, single);
    };
    m.def("steinhardt_shells", steinhardt_shells, py::arg("offsets"), py::arg("neighbors"), py::arg("vectors"),
          py::arg("weights"), py::arg("bins"), py::arg("averaged"), py::arg("cache_bytes"), py::arg("shells"),
          py::arg("single") = false,
          "Steinhardt q_l, w^_l, qbar_l, wbar^_l of several shells of one CSR neighbour list in one pass; each shell "
          "(first, degrees, with_wl, wigner_start, wigner_m, wigner_coeff, out) counts the first `first` bonds of "
          "each row (-1: all) and writes into its `out` (contiguous rows, possibly inside a wider array); single: "
          "computed in float (about 1e-7 relative; a classifier's float32 input), written as float64.");
    m.def(
        "steinhardt",
        [steinhardt_shells](Input<int64_t> offsets, Input<int64_t> neighbors, Input<double> vectors, py::object weights,
                            py::object bins, py::array_t<int32_t> degrees, bool with_wl, bool averaged,
                            py::array_t<int64_t> wigner_start, py::array_t<int32_t> wigner_m,
                            py::array_t<double> wigner_coeff, int64_t cache_bytes, py::object out, int64_t first) {
            py::list shells;
            shells.append(py::make_tuple(first, degrees, with_wl, wigner_start, wigner_m, wigner_coeff, out));
            steinhardt_shells(offsets, neighbors, vectors, weights, bins, averaged, cache_bytes, shells, false);
        },
        py::arg("offsets"), py::arg("neighbors"), py::arg("vectors"), py::arg("weights"), py::arg("bins"),
        py::arg("degrees"), py::arg("with_wl"), py::arg("averaged"), py::arg("wigner_start"), py::arg("wigner_m"),
        py::arg("wigner_coeff"), py::arg("cache_bytes"), py::arg("out"), py::arg("first") = -1,
        "Steinhardt q_l, w^_l, qbar_l, wbar^_l of every atom of a CSR neighbour list, written into `out` (contiguous "
        "rows, possibly inside a wider array); with first = k >= 1, only the first k bonds of each row count.");

    m.def(
        "symmetry_functions",
        [](Input<int64_t> offsets, Input<int64_t> neighbors, Input<double> vectors, Input<int32_t> species,
           int n_species, double cutoff, Input<double> g2, Input<double> g4, Input<double> g5, Output out) {
            Input<double> no_weights;
            const NeighborList nl = neighbor_list(offsets, neighbors, vectors, py::none(), no_weights);
            require(species.ndim() == 1 && species.shape(0) == nl.n_atoms, "species must have one entry per atom");
            require(n_species >= 1, "n_species must be positive");
            for (int64_t i = 0; i < nl.n_atoms; ++i)
                require(species.data()[i] >= 0 && species.data()[i] < n_species, "species index out of range");
            require(cutoff > 0.0, "cutoff must be positive");
            require(g2.ndim() == 2 && g2.shape(1) == 2, "g2 must have shape (n, 2): (eta, r_s)");
            require(g4.ndim() == 2 && g4.shape(1) == 3, "g4 must have shape (n, 3): (eta, zeta, lambda)");
            require(g5.ndim() == 2 && g5.shape(1) == 3, "g5 must have shape (n, 3): (eta, zeta, lambda)");
            const int n_g2 = int(g2.shape(0)), n_g4 = int(g4.shape(0)), n_g5 = int(g5.shape(0));
            const int n_pairs = n_species * (n_species + 1) / 2;
            check_output(out, nl.n_atoms, int64_t(n_species) * n_g2 + int64_t(n_pairs) * (n_g4 + n_g5));
            double* dst = out.mutable_data();
            py::gil_scoped_release release;
            symmetry_functions(nl, species.data(), n_species, cutoff, g2.data(), n_g2, g4.data(), n_g4, g5.data(),
                               n_g5, dst);
        },
        py::arg("offsets"), py::arg("neighbors"), py::arg("vectors"), py::arg("species"), py::arg("n_species"),
        py::arg("cutoff"), py::arg("g2"), py::arg("g4"), py::arg("g5"), py::arg("out").noconvert(),
        "Species-resolved G2, G4, G5 symmetry functions of every atom, written into `out`.");

    m.def(
        "nearest_neighbors",
        [](Input<double> positions, Input<double> cell, std::array<bool, 3> pbc, int k, bool with_bins,
           std::optional<py::array_t<int64_t>> out_neighbors, std::optional<py::array_t<double>> out_vectors) -> py::tuple {
            check_structure(positions, cell);
            require(k >= 1, "k must be at least 1");
            const int64_t n = positions.shape(0);
            require(out_neighbors.has_value() == out_vectors.has_value(), "give both out arrays or neither");
            if (!out_neighbors)
                require_memory(double(n) * k * (sizeof(int64_t) + 3 * sizeof(double)),
                               "the nearest-neighbour list (" + std::to_string(k) + " neighbours of " +
                                   std::to_string(n) + " atoms)");
            py::array_t<int64_t> neighbors = out_neighbors ? *out_neighbors : py::array_t<int64_t>({n, int64_t(k)});
            py::array_t<double> vectors = out_vectors ? *out_vectors : py::array_t<double>({n, int64_t(k), int64_t(3)});
            require(neighbors.ndim() == 2 && neighbors.shape(0) == n && neighbors.shape(1) == k &&
                        (neighbors.flags() & py::array::c_style) && neighbors.writeable(),
                    "out_neighbors must be a writeable, C-contiguous int64 array of shape (n, k)");
            require(vectors.ndim() == 3 && vectors.shape(0) == n && vectors.shape(1) == k && vectors.shape(2) == 3 &&
                        (vectors.flags() & py::array::c_style) && vectors.writeable(),
                    "out_vectors must be a writeable, C-contiguous float64 array of shape (n, k, 3)");
            int64_t* nb = neighbors.mutable_data();
            double* vec = vectors.mutable_data();
            BinGrid bins;
            {
                py::gil_scoped_release release;
                nearest_neighbors(n, positions.data(), cell.data(), pbc.data(), k, nb, vec, with_bins ? &bins : nullptr);
            }
            if (with_bins) return py::tuple(py::make_tuple(neighbors, vectors, bins_to_python(std::move(bins))));
            return py::tuple(py::make_tuple(neighbors, vectors));
        },
        py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("k"), py::arg("with_bins") = false,
        py::arg("out_neighbors").noconvert() = py::none(), py::arg("out_vectors").noconvert() = py::none(),
        "The k nearest neighbours of every atom by increasing distance: (neighbors (n, k), vectors (n, k, 3)), "
        "written into out_neighbors and out_vectors where given; "
        "index -1 where fewer than k exist. Atoms at distance zero are skipped, as by OVITO's NearestNeighborFinder. "
        "With with_bins, also the search's own bins (see spatial_bins).");

    m.def(
        "spatial_bins",
        [](Input<double> positions, Input<double> cell, std::array<bool, 3> pbc, double width) {
            check_structure(positions, cell);
            require(width >= 0.0 && std::isfinite(width), "width must be finite and not negative");
            const int64_t n = positions.shape(0);
            BinGrid bins;
            {
                py::gil_scoped_release release;
                bins = spatial_bins(n, positions.data(), cell.data(), pbc.data(), width);
            }
            return bins_to_python(std::move(bins));
        },
        py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("width"),
        "The atoms sorted into bins about `width` wide (at least one interatomic spacing): (order, start, shape, "
        "periodic); the atoms of bin (x, y, z) are order[start[b]:start[b+1]], b = (z * ny + y) * nx + x.");

    m.def(
        "cutoff_neighbors",
        [](Input<double> positions, Input<double> cell, std::array<bool, 3> pbc, double cutoff, bool with_bins) {
            check_structure(positions, cell);
            require(cutoff > 0.0 && std::isfinite(cutoff), "cutoff must be positive and finite");
            const int64_t n = positions.shape(0);
            py::array_t<int64_t> offsets(n + 1);
            int64_t* off = offsets.mutable_data();
            std::unique_ptr<CutoffSearch> search;
            {
                py::gil_scoped_release release;
                search = std::make_unique<CutoffSearch>(n, positions.data(), cell.data(), pbc.data(), cutoff);
                search->count(off);
            }
            const int64_t n_bonds = off[n];
            require_memory(double(n_bonds) * (sizeof(int64_t) + 3 * sizeof(double)),
                           "the cutoff search (" + std::to_string(n_bonds) + " bonds)");
            py::array_t<int64_t> neighbors(n_bonds);
            py::array_t<double> vectors({n_bonds, int64_t(3)});
            int64_t* nb = neighbors.mutable_data();
            double* vec = vectors.mutable_data();
            {
                py::gil_scoped_release release;
                search->fill(off, nb, vec);
            }
            if (with_bins) return py::tuple(py::make_tuple(offsets, neighbors, vectors, bins_to_python(search->take_bins())));
            return py::tuple(py::make_tuple(offsets, neighbors, vectors));
        },
        py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"), py::arg("with_bins") = false,
        "All neighbours within `cutoff` (distance <= cutoff, as OVITO's CutoffNeighborFinder) in CSR form: "
        "(offsets (n + 1), neighbors (n_bonds), vectors (n_bonds, 3)), rows in atom order; with with_bins, also "
        "the search's bins (see spatial_bins).");

    m.def(
        "voronoi_cells",
        [](Input<double> positions, Input<double> cell, std::array<bool, 3> pbc) {
            check_structure(positions, cell);
            const int64_t n = positions.shape(0);
            py::array_t<int64_t> offsets(n + 1);
            int64_t* off = offsets.mutable_data();
            std::unique_ptr<VoronoiCells> cells;
            {
                py::gil_scoped_release release;
                cells = std::make_unique<VoronoiCells>(n, positions.data(), cell.data(), pbc.data());
                cells->count(off);
            }
            const int64_t n_faces = off[n];
            py::array_t<int64_t> neighbors(n_faces);
            py::array_t<double> vectors({n_faces, int64_t(3)});
            py::array_t<double> areas(n_faces);
            {
                int64_t* nb = neighbors.mutable_data();
                double* vec = vectors.mutable_data();
                double* area = areas.mutable_data();
                py::gil_scoped_release release;
                cells->fill(off, nb, vec, area);
            }
            return py::make_tuple(offsets, neighbors, vectors, areas);
        },
        py::arg("positions"), py::arg("cell"), py::arg("pbc"),
        "The Voronoi cell of every atom (cell periodic in all three directions) in CSR form: (offsets (n + 1), "
        "neighbors (n_faces), vectors (n_faces, 3), areas (n_faces)), one row per face of non-zero area. "
        "CellsTooLarge where an atom borders a large empty region (use voro++ there).");
}
