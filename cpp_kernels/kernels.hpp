// Plain C++ interface of the descriptor kernels. Everything is a contiguous buffer; the
// neighbour list is in CSR form: the bonds of atom i are rows offsets[i] .. offsets[i+1]-1 of
// `neighbors` (index of the neighbour) and `vectors` (x_j - x_i, minimum image already applied).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "threads.hpp"

namespace mlclass {

struct NeighborList {
    int64_t n_atoms;
    const int64_t* offsets;   // (n_atoms + 1)
    const int64_t* neighbors; // (n_bonds)
    const double* vectors;    // (n_bonds, 3)
    const double* weights;    // (n_bonds) or nullptr for uniform weights
    // Only the first `first` bonds of each row count: the rows of a k-nearest list sorted by
    // distance serve every k' <= k without copying them.
    int64_t first = INT64_MAX;

    int64_t begin(int64_t i) const { return offsets[i]; }
    int64_t count(int64_t i) const { return std::min(offsets[i + 1] - offsets[i], first); }
};

// Coupling coefficients for the third-order invariants w_l, one block of rows per degree:
// rows start[d] .. start[d+1]-1 hold (m1, m2, m3) with m1 <= m2 <= m3, m1 + m2 + m3 = 0, and
// coeff = Wigner 3j (l l l; m1 m2 m3) times the number of distinct permutations of (m1, m2, m3).
struct WignerTable {
    const int64_t* start;  // (n_degrees + 1)
    const int32_t* m;      // (n_rows, 3)
    const double* coeff;   // (n_rows)
};

// Y_lm for m = -l..l, l = 0..lmax; out is complex (n, (lmax+1)^2), column l*l + l + m.
void spherical_harmonics(int64_t n, const double* vectors, int lmax, double* out_complex);

// Atoms sorted into a grid of bins: the atoms of bin (x, y, z), b = (z * shape[1] + y) * shape[0] + x,
// are order[start[b]] .. order[start[b+1] - 1]; `periodic`: whether the grid wraps around.
// order == nullptr: no bins (one bin holding all atoms in index order).
struct SpatialBins {
    const int64_t* order = nullptr;
    const int64_t* start = nullptr;
    int shape[3] = {1, 1, 1};
    bool periodic[3] = {false, false, false};
};

// One set of Steinhardt invariants over the first `first` bonds of every row (< 0: all of them).
// Output columns: q_l for each degree, then (if with_wl) w^_l, then (if averaged) qbar_l, then (if
// averaged and with_wl) wbar^_l; the row of atom i starts at out + i * out_stride (rows may lie
// inside a wider array).
struct SteinhardtShell {
    int64_t first;
    const int32_t* degrees;
    int n_degrees;
    bool with_wl;
    WignerTable wigner;
    double* out;
    int64_t out_stride;
};

// Steinhardt invariants of one or more shells of the same neighbour list (e.g. the 12 and the 4
// nearest), in one pass: the neighbour average sweeps the bins (see steinhardt.cpp) once for all
// of them, keeping about `cache_bytes` of q_lm per thread; without bins it keeps q_lm of all atoms.
// `nl` must hold at least the bonds of the widest shell. single_precision: the sums and averages in
// float (twice the SIMD lanes, half the memory traffic; ~1e-7 relative, what a classifier's float32
// network takes), the output in double either way.
void steinhardt(const NeighborList& nl, const SpatialBins& bins, const std::vector<SteinhardtShell>& shells,
                bool averaged, int64_t cache_bytes, bool single_precision = false);

// Behler-Parrinello symmetry functions with the cosine cutoff, resolved by neighbour species
// (G2: one block per species; G4, G5: one block per unordered species pair a <= b, in the order
// (0,0), (0,1), ..., (0,S-1), (1,1), ...). Angular terms are summed over unordered neighbour
// pairs j < k (the convention of dscribe; Behler's double sum is twice this).
//   G2 = sum_j exp(-eta (r_ij - r_s)^2) fc(r_ij)
//   G4 = 2^(1-zeta) sum_{j<k} (1 + lambda cos)^zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2)) fc_ij fc_ik fc_jk
//   G5 = 2^(1-zeta) sum_{j<k} (1 + lambda cos)^zeta exp(-eta (r_ij^2 + r_ik^2)) fc_ij fc_ik
void symmetry_functions(const NeighborList& nl, const int32_t* species, int n_species, double cutoff,
                        const double* g2, int n_g2, const double* g4, int n_g4, const double* g5,
                        int n_g5, double* out);

int max_threads();

// Distances of the k neighbours of each atom (vectors (n, k, 3)) divided by the atom's mean distance
// to its first `normalize` neighbours (0 where that mean is 0): out (n, k), the row of atom i at
// out + i * out_stride.
void relative_distances(int64_t n, int k, int normalize, const double* vectors, double* out, int64_t out_stride);

// The point clouds of a PointNet: the first k of every atom's k_max nearest-neighbour vectors
// divided by its mean distance to its first `normalize` neighbours. Row i of the output starts at
// out + out_stride * i and holds x1, y1, z1, x2, ... (3k values).
void point_cloud(int64_t n, int k_max, int k, int normalize, const double* vectors, double* out, int64_t out_stride);

// PointNet inference (pointnet.cpp). The per-point MLP of training/network.py's PointNet: the first
// layer (first_width x 4, on x, y, z, |r|; row-major as torch stores it), then layers of widths
// widths[l], their weights transposed (in x out, row-major), each followed by ReLU.
struct PointNetWeights {
    int first_width = 0;
    const float* first_weight = nullptr;
    const float* first_bias = nullptr;
    std::vector<int> widths;
    std::vector<const float*> weights_t;
    std::vector<const float*> biases;
};

// PointNet.embed of every cloud: row i of `clouds` (at clouds + cloud_stride * i) holds x1, y1, z1,
// x2, ... of n_points points; align_radius > 0 turns on PointNet.frame. out: (n, last width).
void pointnet_embed(int64_t n, int n_points, const double* clouds, int64_t cloud_stride, const PointNetWeights& net,
                    float align_radius, float* out);

// StructureNet inference (structure_net.cpp): the network of training/network.py, its weights as
// torch stores them (out, in), row-major; the site layer's first n_sites outputs only. The
// novelty_* may be null when no novelty is asked for.
struct StructureNetWeights {
    int n_features = 0, n_classes = 0, n_sites = 0;
    const float* mean = nullptr;
    const float* inv_std = nullptr;
    std::vector<int> widths;  // hidden layers, each followed by SiLU
    std::vector<const float*> weights;
    std::vector<const float*> biases;
    const float* class_weight = nullptr;
    const float* class_bias = nullptr;
    const float* site_weight = nullptr;
    const float* site_bias = nullptr;
    const float* novelty_means = nullptr;    // (n_classes, n_features)
    const float* novelty_factors = nullptr;  // (n_classes, n_features, n_features): y = (z - mean) factor
    const float* novelty_scales = nullptr;   // (n_classes)
};

// Class posteriors (n, n_classes), site posteriors (n, n_sites; when n_sites > 0), where `novelty`
// is not null the novelty (n), and the most probable class (n) and its posterior (n) of every row
// of x (n, n_features; float64, read as the float32 the network takes).
void structure_net(int64_t n, const double* x, const StructureNetWeights& net, float* probs, float* sites,
                   float* novelty, int32_t* most_probable, float* confidence);

// Row i of out: the mean of row i of h (n x features) and the rows neighbors[i] (n x k; -1 =
// missing, left out).
template <typename T>  // float (learnt embeddings) and double (descriptors)
void neighbor_mean(int64_t n, int features, const T* h, int k, const int64_t* neighbors, T* out);

// Identify Diamond's test of every atom's second shell (diamond.cpp): from the first four of every
// atom's nearest neighbours (the row of atom i at rows + row_stride * i, -1: missing) and the
// vectors to them (x, y, z of each, from vectors + vector_stride * i), out[i] = kDiamondCubic,
// kDiamondHexagonal or kDiamondNone.
constexpr int kDiamondNone = 0, kDiamondCubic = 1, kDiamondHexagonal = 2;
void diamond_second_shells(int64_t n, const int64_t* rows, int64_t row_stride, const double* vectors,
                           int64_t vector_stride, int8_t* out);

// Adaptive common neighbour analysis as OVITO runs it (cna.cpp): from the first 12 (14) of every
// atom's k nearest neighbours (row of atom i at rows + row_stride * i, -1: missing; vectors, x, y, z
// each, from vectors + vector_stride * i), out[i] = OVITO's CNA type; atoms with which[i] == 0 (if
// which is given) are skipped as Other.
constexpr int kCnaOther = 0, kCnaFcc = 1, kCnaHcp = 2, kCnaBcc = 3, kCnaIco = 4;
void adaptive_cna(int64_t n, int k, const int64_t* rows, int64_t row_stride, const double* vectors,
                  int64_t vector_stride, const uint8_t* which, int8_t* out);

// Cell-list neighbour search (cell_list.cpp). `cell` is the (3, 4) row-major matrix OVITO gives:
// columns 0-2 are the cell vectors, column 3 the origin; `pbc` holds one flag per cell vector.
// Vectors are x_j - x_i with the periodic image applied; an atom can be its own neighbour (or
// appear several times) through periodic images of a small cell, as with OVITO's finders. Two
// atoms at distance zero are refused (std::invalid_argument), and so are searches that would visit
// more than kMaxVisits bins and images from one bin (cell_grid.hpp) or need more than the
// machine's memory.
struct CellGrid;

// Bins of a cell-list search, kept for the caller (SpatialBins refers to these arrays).
struct BinGrid {
    Buffer<int64_t> order, start;
    int shape[3] = {1, 1, 1};
    bool periodic[3] = {false, false, false};
    SpatialBins view() const;
};

// The k nearest neighbours of every atom, by increasing distance: neighbors (n, k), vectors
// (n, k, 3). Entries that do not exist (small non-periodic systems) get index -1 and a zero vector.
// If `bins` is not null, it receives the search's own bins (about 1.2 spacings wide for k = 12), for free.
void nearest_neighbors(int64_t n, const double* positions, const double* cell, const bool* pbc, int k,
                       int64_t* neighbors, double* vectors, BinGrid* bins = nullptr);

// The atoms sorted into bins about `width` wide (at least one interatomic spacing), for the
// neighbour average of steinhardt().
BinGrid spatial_bins(int64_t n, const double* positions, const double* cell, const bool* pbc, double width);

// All pairs with |x_j - x_i| <= cutoff (OVITO's CutoffNeighborFinder convention), in CSR form with
// rows in atom order. Two passes so that the caller allocates exactly: count() writes the
// offsets (n + 1), fill() the bonds (offsets[n] of them).
class CutoffSearch {
public:
    CutoffSearch(int64_t n, const double* positions, const double* cell, const bool* pbc, double cutoff);
    ~CutoffSearch();
    void count(int64_t* offsets) const;
    void fill(const int64_t* offsets, int64_t* neighbors, double* vectors) const;
    BinGrid take_bins();  // after fill(): the search's bins (as wide as the cutoff), for steinhardt()

private:
    std::unique_ptr<CellGrid> grid_;
    const double* positions_;  // as given (for error messages)
    double cutoff_;
};

// The Voronoi cell of every atom of a cell periodic in all three directions (voronoi.cpp): its
// neighbours (one per face; periodic images of one atom, the atom's own included, are separate
// faces), the vectors to them and the face areas. Faces of zero area (planes that touch the cell
// at a vertex or an edge only) are left out, as OVITO's VoronoiAnalysisModifier does. The
// constructor builds all cells; count() writes the CSR offsets (n + 1), fill() the faces.
// Most candidate neighbours of one atom (random points need up to a few hundred; the face-by-face
// construction costs candidates^2 per atom); more throw CellsTooLarge.
constexpr size_t kMaxCandidates = 1024;
struct CellsTooLarge : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class VoronoiCells {
public:
    VoronoiCells(int64_t n, const double* positions, const double* cell, const bool* pbc);
    ~VoronoiCells();
    void count(int64_t* offsets) const;
    void fill(const int64_t* offsets, int64_t* neighbors, double* vectors, double* areas) const;

    struct Face;

private:
    struct Incoming {
        int64_t source;     // the atom that built the face
        const Face* face;
    };
    void assemble();
    template <typename Body>
    void for_each_face(int64_t atom, Body&& body) const;  // body(face, the atom that built it)

    struct FaceStore;                   // chunks that never move (incoming_ points into them)
    std::vector<FaceStore> stores_;     // one per thread
    Buffer<const Face*> built_;         // per atom: the faces it built ...
    Buffer<int64_t> own_;               // ... and how many
    Buffer<double> radius_;             // how far its candidates reached
    Buffer<int64_t> incoming_offsets_;  // faces built by neighbours: incoming_[offsets[i] .. offsets[i + 1])
    Buffer<Incoming> incoming_;
    Buffer<int64_t> counts_;            // faces per atom (without slivers)
    Buffer<double> reach2_;             // squared distance of the farthest vertex
    Buffer<double> tiny_;               // faces of this area or less are slivers
};

}  // namespace mlclass
