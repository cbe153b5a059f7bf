// OpenMP is optional: without it the kernels run on one thread.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

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

}  // namespace mlclass
