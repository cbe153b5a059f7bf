// Steinhardt bond-order invariants q_l, w^_l and their neighbour averages (Lechner & Dellago 2008).
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "kernels.hpp"
#include "spherical_harmonics.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// The coupling rows of one degree with the same m1 = -mu: m2 = m2_first .. m2_first+count-1 and
// m3 = mu - m2 (both >= 0, the table keeps one of each mirror pair), coefficients from `coeff`.
struct Run {
    int mu, m2_first, count;
    int64_t coeff;
};

// One requested degree: its column in the output block, its slot in a row of q_lm, and its
// coupling rows grouped into runs.
struct Degree {
    int l;
    int column;  // index into the list of degrees given by the caller
    int slot;    // offset of q_l0 in a row of q_lm
    std::vector<Run> runs;
};

std::vector<Run> coupling_runs(const WignerTable& wigner, int column) {
    std::vector<Run> runs;
    for (int64_t row = wigner.start[column]; row < wigner.start[column + 1]; ++row) {
        const int32_t* m = wigner.m + 3 * row;
        if (m[1] < 0 || m[2] < 0 || m[0] + m[1] + m[2] != 0)
            throw std::invalid_argument("Wigner coupling rows must have m1 = -(m2 + m3) and m2, m3 >= 0");
        if (!runs.empty() && runs.back().mu == -m[0] && runs.back().m2_first + runs.back().count == m[1])
            ++runs.back().count;
        else
            runs.push_back(Run{-m[0], m[1], 1, row});
    }
    return runs;
}

// q_l and w^_l from rows of q_lm (m = 0..l; q_l,-m = (-1)^m conj(q_lm) is never stored), kLanes
// atoms at once, one per SIMD lane:
//   w = sum over runs of Re(q_{l,-mu} P_mu),  P_mu = sum_m2 coeff q_{l,m2} q_{l,mu-m2}
// add() queues the row of an atom (a copy, transposed so that lane a holds atom a) together with
// the output columns of its q_l and w^_l; every kLanes atoms, and at flush(), the invariants are
// computed and written. Without w^_l, add() writes q_l at once. Real: the precision of the rows and
// the arithmetic; the output is double either way.
template <typename Real>
class InvariantWriter {
    using Lanes = typename Simd<Real>::Lanes;
    static constexpr int kLanes = kLanesOf<Real>;

public:
    InvariantWriter(const std::vector<Degree>& degrees, const double* coeff, bool with_wl, int size, int64_t out_stride,
                    double* out)
        : degrees_(degrees), coeff_(coeff), with_wl_(with_wl), size_(size), out_stride_(out_stride), out_(out),
          lanes_(size_t(2) * size * kLanes, Real(0)) {}

    void add(int64_t atom, const Real* row, int column_q, int column_w) {
        if (!with_wl_) return write_q(atom, row, column_q);
        for (int k = 0; k < 2 * size_; ++k) lanes_[size_t(k) * kLanes + count_] = row[k];
        atom_[count_] = atom, column_q_[count_] = column_q, column_w_[count_] = column_w;
        if (++count_ == kLanes) flush();
    }

    void flush() {
        if (count_ == 0) return;
        auto re = [&](const Degree& d, int m) { return load(d.slot + m); };
        auto im = [&](const Degree& d, int m) { return load(size_ + d.slot + m); };
        for (const Degree& d : degrees_) {
            Lanes s = re(d, 0) * re(d, 0) + im(d, 0) * im(d, 0);
            for (int m = 1; m <= d.l; ++m) s += Real(2) * (re(d, m) * re(d, m) + im(d, m) * im(d, m));
            Lanes sum{};
            if (with_wl_) {
                for (const Run& run : d.runs) {
                    const double* c = coeff_ + run.coeff;
                    Lanes pr{}, pi{};
                    for (int j = 0, b = run.m2_first, e = run.mu - run.m2_first; j < run.count; ++j, ++b, --e) {
                        pr += Real(c[j]) * (re(d, b) * re(d, e) - im(d, b) * im(d, e));
                        pi += Real(c[j]) * (re(d, b) * im(d, e) + im(d, b) * re(d, e));
                    }
                    sum += Real((run.mu & 1) ? -1 : 1) * (re(d, run.mu) * pr + im(d, run.mu) * pi);
                }
            }
            const double scale = 4.0 * M_PI / (2 * d.l + 1);
            for (int a = 0; a < count_; ++a) {
                double* row = out_ + atom_[a] * out_stride_;
                const double s_a = s[a];
                row[column_q_[a] + d.column] = std::sqrt(scale * s_a);
                if (with_wl_) row[column_w_[a] + d.column] = s_a > 0.0 ? double(sum[a]) / (s_a * std::sqrt(s_a)) : 0.0;
            }
        }
        count_ = 0;
    }

private:
    // q_l alone needs no lanes: the sums of squares straight from the row, in flush()'s order.
    void write_q(int64_t atom, const Real* row, int column_q) const {
        const Real* re = row;
        const Real* im = row + size_;
        double* out = out_ + atom * out_stride_ + column_q;
        for (const Degree& d : degrees_) {
            Real s = re[d.slot] * re[d.slot] + im[d.slot] * im[d.slot];
            for (int m = 1; m <= d.l; ++m) s += Real(2) * (re[d.slot + m] * re[d.slot + m] + im[d.slot + m] * im[d.slot + m]);
            out[d.column] = std::sqrt(4.0 * M_PI / (2 * d.l + 1) * double(s));
        }
    }

    Lanes load(int k) const { return load_lanes(lanes_.data() + size_t(k) * kLanes); }

    const std::vector<Degree>& degrees_;
    const double* coeff_;
    bool with_wl_;
    int size_;
    int64_t out_stride_;  // doubles from one atom's output row to the next
    double* out_;
    std::vector<Real> lanes_;  // entry k of the row of lane a at k * kLanes + a
    int count_ = 0;
    int64_t atom_[kLanes];
    int column_q_[kLanes], column_w_[kLanes];
};

// Per-thread work space for the bonds of up to kLanesOf<Real> atoms.
template <typename Real>
struct BlockScratch {
    Buffer<Real> x, y, z, w, power, re, im;
    bool zero_length = false;  // a bond of zero length was seen (an error, counted afterwards)
};

// One shell's share of a row of q_lm: its degrees, the bonds it counts and where its q_lm lie.
template <typename Real>
struct Shell {
    int64_t first;                // the first `first` bonds of each row count (< 0: all)
    std::vector<Degree> degrees;  // Degree::slot: offset of q_l0 within this shell's part
    LegendreTable<Real> table;
    int size;                     // sum of (l + 1) over its degrees
    int base;                     // its real parts start here in a row, its imaginary parts `size` further
    const SteinhardtShell* spec;
    int col_w, col_qbar, col_wbar;  // first output column of w_l, qbar_l, wbar_l

    int64_t count(int64_t bonds) const { return first < 0 ? bonds : std::min(bonds, first); }
};

// q_lm (m >= 0) of up to kLanesOf<Real> atoms for every shell, written to rows[a] (each shell's real
// parts at its base plus each degree's slot, imaginary parts `size` further; 0 for an atom without
// neighbours). The bonds' directions are computed once for the widest shell (in double).
template <typename Real>
void block_qlm(const NeighborList& nl, const int64_t* atoms, int count, const std::vector<Shell<Real>>& shells,
               BlockScratch<Real>& s, Real* const* rows) {
    constexpr int kLanes = kLanesOf<Real>;
    int slots = 0;
    for (int a = 0; a < count; ++a) slots = std::max(slots, int(nl.count(atoms[a])));
    const size_t n_lanes = size_t(std::max(slots, 1)) * kLanes;
    s.x.assign(n_lanes, Real(0)); s.y.assign(n_lanes, Real(0)); s.z.assign(n_lanes, Real(0)); s.w.assign(n_lanes, Real(0));
    s.power.resize(2 * n_lanes);
    for (int a = 0; a < count; ++a) {
        const int64_t begin = nl.begin(atoms[a]), n = nl.count(atoms[a]);
        for (int64_t j = 0; j < n; ++j) {
            const double* v = nl.vectors + 3 * (begin + j);
            const double r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
            if (!(r2 > 0.0)) {  // weight 0 here; an error once all is done
                s.zero_length = true;
                continue;
            }
            const double inverse = 1.0 / std::sqrt(r2);
            const size_t at = size_t(j) * kLanes + a;
            s.x[at] = Real(v[0] * inverse); s.y[at] = Real(v[1] * inverse); s.z[at] = Real(v[2] * inverse);
            s.w[at] = Real(nl.weights ? nl.weights[begin + j] : 1.0);
        }
    }
    for (const Shell<Real>& shell : shells) {
        Real norm[kLanes] = {};
        for (int a = 0; a < count; ++a) {
            // unweighted: the count (a bond of zero length, weight 0 here, is an error in the end)
            const int64_t bonds = shell.count(nl.count(atoms[a]));
            double weight_sum = nl.weights ? 0.0 : double(bonds);
            if (nl.weights)
                for (int64_t j = 0; j < bonds; ++j) weight_sum += s.w[size_t(j) * kLanes + a];
            norm[a] = Real(weight_sum > 0.0 ? 1.0 / weight_sum : 0.0);
        }
        const size_t sums = size_t(lm_count(shell.table.lmax)) * kLanes;
        s.re.resize(sums); s.im.resize(sums);
        ylm_sums(shell.table, int(std::max<int64_t>(shell.count(slots), 1)), s.x.data(), s.y.data(), s.z.data(),
                 s.w.data(), s.power.data(), s.re.data(), s.im.data());
        for (int a = 0; a < count; ++a) {
            Real* re = rows[a] + shell.base;
            Real* im = re + shell.size;
            for (const Degree& d : shell.degrees) {
                const size_t first = size_t(lm_index(d.l, 0)) * kLanes + a;
                for (int m = 0; m <= d.l; ++m) {
                    re[d.slot + m] = s.re[first + m * kLanes] * norm[a];
                    im[d.slot + m] = s.im[first + m * kLanes] * norm[a];
                }
            }
        }
    }
}

}  // namespace

void spherical_harmonics(int64_t n, const double* vectors, int lmax, double* out) {
    constexpr int kLanes = kLanesOf<double>;
    const LegendreTable<double> table(lmax);
    const int width = (lmax + 1) * (lmax + 1);
    const int64_t n_blocks = (n + kLanes - 1) / kLanes;
    ThreadErrors errors;
#pragma omp parallel
    {
        // Each bond is a lane of its own.
        std::vector<double> x, y, z, w, power, re, im;
        errors.run([&] {
            for (auto* v : {&x, &y, &z, &w}) v->resize(kLanes);
            power.resize(2 * kLanes);
            re.resize(size_t(lm_count(lmax)) * kLanes), im.resize(re.size());
        });
#pragma omp for schedule(static)
        for (int64_t block = 0; block < n_blocks; ++block) errors.run([&] {
            const int64_t first = block * kLanes;
            const int count = int(std::min<int64_t>(kLanes, n - first));
            for (int a = 0; a < kLanes; ++a) {
                x[a] = y[a] = z[a] = w[a] = 0.0;
                if (a >= count) continue;
                const double* v = vectors + 3 * (first + a);
                const double r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
                x[a] = v[0] / r; y[a] = v[1] / r; z[a] = v[2] / r; w[a] = 1.0;
            }
            ylm_sums(table, 1, x.data(), y.data(), z.data(), w.data(), power.data(), re.data(), im.data());
            for (int a = 0; a < count; ++a) {
                double* row = out + 2 * width * (first + a);
                for (int l = 0; l <= lmax; ++l) {
                    for (int m = 0; m <= l; ++m) {
                        const double yr = re[lm_index(l, m) * kLanes + a], yi = im[lm_index(l, m) * kLanes + a];
                        const double sign = (m & 1) ? -1.0 : 1.0;
                        row[2 * (l * l + l + m)] = yr;
                        row[2 * (l * l + l + m) + 1] = yi;
                        row[2 * (l * l + l - m)] = sign * yr;
                        row[2 * (l * l + l - m) + 1] = -sign * yi;
                    }
                }
            }
        });
    }
    errors.rethrow();
}

namespace {

// One axis of the bin grid as seen by a tile of bins [first, last) that also needs the `reach`
// bins on either side: the extended range starts at bin `lo` (unwrapped) and is `len` bins long.
// On a periodic axis that the extended range would wrap onto itself, it is the whole axis, once.
struct TileAxis {
    int n, lo, len;
    bool periodic;

    TileAxis(int n_bins, bool periodic_, int first, int last, int reach) : n(n_bins), periodic(periodic_) {
        if (periodic && last - first + 2 * reach >= n) {
            lo = 0, len = n;
        } else if (periodic) {
            lo = first - reach, len = last - first + 2 * reach;
        } else {
            lo = std::max(0, first - reach), len = std::min(n, last + reach) - lo;
        }
    }
    // lo > -n and len <= n + 2, so one period added or removed wraps every index used here.
    int bin(int e) const {  // bin of extended index e
        const int b = lo + e;
        return !periodic ? b : (b < 0 ? b + n : (b >= n ? b - n : b));
    }
    int index(int b) const {  // extended index of bin b, or -1 outside the range
        int e = b - lo;
        if (periodic) e += e < 0 ? n : (e >= n ? -n : 0);
        return e >= 0 && e < len ? e : -1;
    }
};

// Where an atom lives in the bin grid: bin coordinates and its place among the atoms of its bin.
struct Location {
    int32_t x, y, z, slot;
};

}  // namespace

namespace {

// The neighbour average needs q_lm of every neighbour. Keeping q_lm of all atoms would cost
// 16 * sum(l+1) bytes per atom (1.4 kB for l = 2..12), more than the neighbour list and the
// output together, and would leave the cache long before the neighbours come to be averaged.
// Instead each thread sweeps pencils of bins: a tile of T x T bins across (y, z), plane by plane
// along x, keeping q_lm only for the planes within reach of the current one, each extended by
// the reach in y and z (the halo, whose q_lm are computed again by the neighbouring pencils).
// A few MB per thread, so the rows stay in cache. A neighbour beyond the reach (a sparse region
// in nearest-neighbour mode) has its q_lm recomputed.
// Several shells of one neighbour list (the 12 and the 4 nearest) share the sweep: their q_lm lie
// side by side in one row, and a neighbour's row is looked up once for all of them.
template <typename Real>
void steinhardt_in(const NeighborList& nl, const SpatialBins& bins, const std::vector<SteinhardtShell>& specs,
                   bool averaged, int64_t cache_bytes) {
    using Lanes = typename Simd<Real>::Lanes;
    constexpr int kLanes = kLanesOf<Real>;
    const int64_t n = nl.n_atoms;

    // Every atom's own q_lm is computed at least once, which notes bonds of zero length; only
    // then are they counted, for the error message.
    bool zero_length = false;
    auto report_zero_length = [&] {
        int64_t count = 0;
        ThreadErrors errors;
#pragma omp parallel for schedule(static) reduction(+ : count)
        for (int64_t i = 0; i < n; ++i) errors.run([&] {
            for (int64_t b = nl.begin(i); b < nl.begin(i) + nl.count(i); ++b) {
                const double* v = nl.vectors + 3 * b;
                count += !(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] > 0.0);
            }
        });
        errors.rethrow();
        throw_zero_length_bonds(count);
    };
    if (n == 0) return;

    std::vector<Shell<Real>> shells;
    int used = 0;  // values of a row taken by the shells so far
    for (const SteinhardtShell& spec : specs) {
        std::vector<Degree> degrees;
        int lmax = 0, size = 0;
        bool even = true;
        for (int c = 0; c < spec.n_degrees; ++c) {
            degrees.push_back({spec.degrees[c], c, size, coupling_runs(spec.wigner, c)});
            lmax = std::max(lmax, spec.degrees[c]);
            size += spec.degrees[c] + 1;
            even = even && spec.degrees[c] % 2 == 0;
        }
        const int nd = spec.n_degrees, col_qbar = nd * (spec.with_wl ? 2 : 1);
        shells.push_back(Shell<Real>{spec.first, std::move(degrees), LegendreTable<Real>(lmax, even), size, used, &spec, nd,
                                     col_qbar, col_qbar + nd});
        used += 2 * size;
    }
    // One row of q_lm: the shells' real and imaginary parts, padded to whole 64-byte cache lines.
    constexpr int kLine = 64 / int(sizeof(Real));
    const int stride = (used + kLine - 1) / kLine * kLine;
    // the writers of one thread, one per shell: (q_l, w_l) and (qbar_l, wbar_l) columns of each
    auto make_writers = [&](std::vector<InvariantWriter<Real>>& writers) {
        writers.reserve(shells.size());
        for (const Shell<Real>& shell : shells)
            writers.emplace_back(shell.degrees, shell.spec->wigner.coeff, shell.spec->with_wl, shell.size,
                                 shell.spec->out_stride, shell.spec->out);
    };

    auto compute_rows = [&](const int64_t* atoms, int count, Real* const* rows, BlockScratch<Real>& scratch) {
        block_qlm(nl, atoms, count, shells, scratch, rows);
        for (int a = 0; a < count; ++a) std::fill(rows[a] + used, rows[a] + stride, Real(0));
    };

    ThreadErrors errors;
    if (!averaged) {
#pragma omp parallel reduction(|| : zero_length)
        {
            BlockScratch<Real> scratch;
            std::vector<InvariantWriter<Real>> writers;
            std::vector<Real> buffer;
            Real* rows[kLanes];
            errors.run([&] {
                make_writers(writers);
                buffer.resize(size_t(kLanes) * stride);
                for (int a = 0; a < kLanes; ++a) rows[a] = buffer.data() + a * stride;
            });
            int64_t atoms[kLanes];
#pragma omp for schedule(dynamic, 32)
            for (int64_t first = 0; first < n; first += kLanes) errors.run([&] {
                const int count = int(std::min<int64_t>(kLanes, n - first));
                for (int a = 0; a < count; ++a) atoms[a] = first + a;
                compute_rows(atoms, count, rows, scratch);
                for (size_t k = 0; k < shells.size(); ++k)
                    for (int a = 0; a < count; ++a) writers[k].add(first + a, rows[a] + shells[k].base, 0, shells[k].col_w);
            });
            errors.run([&] { for (auto& writer : writers) writer.flush(); });
            zero_length = scratch.zero_length;
        }
        errors.rethrow();
        if (zero_length) report_zero_length();
        return;
    }

    // Without bins: one bin holding all atoms in index order.
    const int64_t single_bin[2] = {0, n};
    const int64_t* start = bins.order ? bins.start : single_bin;
    const int nb[3] = {bins.order ? bins.shape[0] : 1, bins.order ? bins.shape[1] : 1, bins.order ? bins.shape[2] : 1};
    auto atom_at = [&](int64_t rank) { return bins.order ? bins.order[rank] : rank; };
    Buffer<Location> where(n);
#pragma omp parallel for schedule(static)
    for (int64_t bin = 0; bin < int64_t(nb[0]) * nb[1] * nb[2]; ++bin) errors.run([&] {
        const int32_t x = int32_t(bin % nb[0]), y = int32_t(bin / nb[0] % nb[1]), z = int32_t(bin / (int64_t(nb[0]) * nb[1]));
        for (int64_t r = start[bin]; r < start[bin + 1]; ++r) where[atom_at(r)] = {x, y, z, int32_t(r - start[bin])};
    });
    errors.rethrow();
    // Neighbours are looked up in the adjacent bins: the searches make bins at least as wide as
    // (nearly) all bonds. A reach of 2 would cost 1.5 times more halo rows than it saves.
    int reach[3];
    for (int d = 0; d < 3; ++d) reach[d] = nb[d] == 1 ? 0 : 1;
    const int n_planes = std::min(2 * reach[0] + 1, nb[0]);
    // Tile side T: n_planes extended planes of (T + 2 reach)^2 bins fill about cache_bytes.
    const double atoms_per_bin = double(n) / (double(nb[0]) * nb[1] * nb[2]);
    const double plane_bins = double(cache_bytes) / (n_planes * atoms_per_bin * stride * sizeof(Real));
    const int side = std::max(1, int(std::sqrt(std::max(plane_bins, 1.0))) - reach[1] - reach[2]);
    const int tiles_y = (nb[1] + side - 1) / side, tiles_z = (nb[2] + side - 1) / side;
    // Then tiles of equal size, so that no thread is left with the one large tile.
    const int side_y = (nb[1] + tiles_y - 1) / tiles_y, side_z = (nb[2] + tiles_z - 1) / tiles_z;
    // Enough pieces to keep every thread busy (pencils split along x if there are few of them):
    // about 8 per thread, none split on one thread, and none shorter than 8 planes, as each piece
    // computes two more planes (32,000 atoms at 2 threads: 2 pieces of 9 planes instead of 4 of 4.5,
    // together with the equal tiles, made the Voronoi-weighted kernel 7% faster).
    const int threads = max_threads(), tiles = tiles_y * tiles_z;
    const int pieces = threads == 1 ? 1 : std::clamp((8 * threads + tiles - 1) / tiles, 1, std::max(1, nb[0] / 8));
    const int64_t n_units = int64_t(tiles_y) * tiles_z * pieces;

#pragma omp parallel reduction(|| : zero_length)
    {
        struct Plane {
            int x = -1;              // bin coordinate held, -1: none
            Buffer<int64_t> offset;  // first row of each bin of the extended tile, and the end
            Buffer<Real> rows;
        };
        std::vector<Plane> planes;
        BlockScratch<Real> scratch;
        std::vector<InvariantWriter<Real>> writers;
        Buffer<Real> sum, spare;
        std::vector<const Real*> sources;
        errors.run([&] {
            planes.resize(n_planes);
            make_writers(writers);
            sum.resize(stride);
        });
        int64_t atoms[kLanes];
        Real* targets[kLanes];
#pragma omp for schedule(dynamic, 1)
        for (int64_t unit = 0; unit < n_units; ++unit) errors.run([&] {
            const int ty = int(unit % tiles_y), tz = int(unit / tiles_y % tiles_z), piece = int(unit / (int64_t(tiles_y) * tiles_z));
            const int y0 = ty * side_y, y1 = std::min(nb[1], y0 + side_y), z0 = tz * side_z, z1 = std::min(nb[2], z0 + side_z);
            const int x0 = int(int64_t(nb[0]) * piece / pieces), x1 = int(int64_t(nb[0]) * (piece + 1) / pieces);
            const TileAxis ay(nb[1], bins.periodic[1], y0, y1, reach[1]), az(nb[2], bins.periodic[2], z0, z1, reach[2]);
            for (Plane& plane : planes) plane.x = -1;
            auto slot_of = [&](int x) { return ((x % n_planes) + n_planes) % n_planes; };
            auto bin_index = [&](int x, int y, int z) { return (int64_t(z) * nb[1] + y) * nb[0] + x; };
            // q_lm of the extended tile at bin coordinate x (unwrapped).
            auto load = [&](int x) {
                const int wrapped = ((x % nb[0]) + nb[0]) % nb[0];
                Plane& plane = planes[slot_of(x)];
                if (plane.x == wrapped) return;
                plane.x = wrapped;
                plane.offset.assign(size_t(ay.len) * az.len + 1, 0);
                for (int ez = 0; ez < az.len; ++ez)
                    for (int ey = 0; ey < ay.len; ++ey) {
                        const int64_t bin = bin_index(wrapped, ay.bin(ey), az.bin(ez));
                        plane.offset[ez * ay.len + ey + 1] = start[bin + 1] - start[bin];
                    }
                for (size_t e = 1; e < plane.offset.size(); ++e) plane.offset[e] += plane.offset[e - 1];
                plane.rows.resize(size_t(plane.offset.back()) * stride);
                int count = 0;
                for (int ez = 0; ez < az.len; ++ez)
                    for (int ey = 0; ey < ay.len; ++ey) {
                        const int64_t bin = bin_index(wrapped, ay.bin(ey), az.bin(ez));
                        Real* row = plane.rows.data() + plane.offset[ez * ay.len + ey] * stride;
                        for (int64_t r = start[bin]; r < start[bin + 1]; ++r, row += stride) {
                            atoms[count] = atom_at(r);
                            targets[count] = row;
                            if (++count == kLanes) compute_rows(atoms, count, targets, scratch), count = 0;
                        }
                    }
                if (count > 0) compute_rows(atoms, count, targets, scratch);
            };
            for (int x = x0; x < x1; ++x) {
                for (int p = x - reach[0]; p <= x + reach[0]; ++p)
                    if (bins.periodic[0] || (p >= 0 && p < nb[0])) load(p);
                // The planes x - reach .. x + reach (fewer in small or open cells: then nullptr or repeated).
                const Plane* near[3] = {nullptr, nullptr, nullptr};
                for (int dx = -reach[0]; dx <= reach[0]; ++dx)
                    if (bins.periodic[0] || (x + dx >= 0 && x + dx < nb[0])) near[dx + reach[0]] = &planes[slot_of(x + dx)];
                // The stored row of an atom, or nullptr if it is out of reach of plane x.
                auto row_of = [&](const Location& at) -> const Real* {
                    int dx = at.x - x;
                    if (bins.periodic[0]) dx += dx > nb[0] / 2 ? -nb[0] : (dx < -(nb[0] / 2) ? nb[0] : 0);
                    if (dx < -reach[0] || dx > reach[0]) return nullptr;
                    const Plane* plane = near[dx + reach[0]];
                    const int ey = ay.index(at.y), ez = az.index(at.z);
                    if (!plane || plane->x != at.x || ey < 0 || ez < 0) return nullptr;
                    return plane->rows.data() + (plane->offset[ez * ay.len + ey] + at.slot) * stride;
                };
                for (int z = z0; z < z1; ++z)
                    for (int y = y0; y < y1; ++y) {
                        const int64_t bin = bin_index(x, y, z);
                        for (int64_t r = start[bin]; r < start[bin + 1]; ++r) {
                            const int64_t i = atom_at(r), begin = nl.begin(i);
                            // only the neighbours some shell counts (the 12 of a row of 16)
                            int64_t count = 0;
                            for (const Shell<Real>& shell : shells) count = std::max(count, shell.count(nl.count(i)));
                            sources.resize(count + 1);
                            sources[0] = row_of(where[i]);
                            for (size_t k = 0; k < shells.size(); ++k)
                                writers[k].add(i, sources[0] + shells[k].base, 0, shells[k].col_w);
                            int missing = 0;  // neighbours out of reach: recomputed, kLanes at a time
                            spare.resize(size_t(count) * stride);
                            for (int64_t b = 0; b < count; ++b) {
                                const Real* row = row_of(where[nl.neighbors[begin + b]]);
                                if (!row) {
                                    atoms[missing] = nl.neighbors[begin + b];
                                    row = targets[missing] = spare.data() + b * stride;
                                    if (++missing == kLanes) compute_rows(atoms, missing, targets, scratch), missing = 0;
                                }
                                sources[b + 1] = row;
                            }
                            if (missing > 0) compute_rows(atoms, missing, targets, scratch);
                            // Each shell's mean over the atom and its own neighbours, a register of
                            // columns at a time summed over all of them (one store per register, not
                            // one per neighbour). A register may run past the shell's columns into the
                            // next shell's, which that shell then overwrites; never past the row.
                            Real* acc = sum.data();
                            for (const Shell<Real>& shell : shells) {
                                const int64_t counted = shell.count(count);
                                const int first = shell.base, end = shell.base + 2 * shell.size;
                                const Real norm = Real(1.0 / double(counted + 1));
                                int t = first;
                                for (; t < end && t + kLanes <= stride; t += kLanes) {
                                    Lanes s = load_lanes(sources[0] + t);
                                    for (int64_t u = 1; u <= counted; ++u) s += load_lanes(sources[u] + t);
                                    store_lanes(acc + t, s * norm);
                                }
                                for (; t < end; ++t) {
                                    Real s = sources[0][t];
                                    for (int64_t u = 1; u <= counted; ++u) s += sources[u][t];
                                    acc[t] = s * norm;
                                }
                            }
                            for (size_t k = 0; k < shells.size(); ++k)
                                writers[k].add(i, acc + shells[k].base, shells[k].col_qbar, shells[k].col_wbar);
                        }
                    }
            }
        });
        errors.run([&] { for (auto& writer : writers) writer.flush(); });
        zero_length = scratch.zero_length;
    }
    errors.rethrow();
    if (zero_length) report_zero_length();
}

}  // namespace

void steinhardt(const NeighborList& nl, const SpatialBins& bins, const std::vector<SteinhardtShell>& specs,
                bool averaged, int64_t cache_bytes, bool single_precision) {
    if (single_precision)
        steinhardt_in<float>(nl, bins, specs, averaged, cache_bytes);
    else
        steinhardt_in<double>(nl, bins, specs, averaged, cache_bytes);
}

}  // namespace mlclass
