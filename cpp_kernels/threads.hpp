// OpenMP is optional: without it the kernels run on one thread.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#ifdef __linux__
#include <sys/mman.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlclass {

// Index of the calling thread within the current parallel region (0 outside one).
inline int this_thread() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

[[noreturn]] inline void throw_zero_length_bonds(int64_t count) {
    throw std::invalid_argument(std::to_string(count) +
                                " neighbour vector(s) of zero length: two atoms occupy the same position");
}

// A large scratch array on 2 MiB pages where the OS allows it: the kernels hop between rows of
// such arrays, and with 4 kiB pages nearly every hop misses the TLB.
struct FreeDeleter {
    void operator()(double* p) const { std::free(p); }
};
inline std::unique_ptr<double[], FreeDeleter> large_array(size_t count) {
    constexpr size_t kPage = size_t(2) << 20;
    const size_t bytes = (count * sizeof(double) + kPage - 1) / kPage * kPage;
    double* p = static_cast<double*>(std::aligned_alloc(kPage, bytes));
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);  // only a hint: harmless where transparent huge pages are off
#endif
    return std::unique_ptr<double[], FreeDeleter>(p);
}

}  // namespace mlclass
