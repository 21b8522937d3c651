// Whether at::parallel_for really runs in parallel inside kernels/. It is a header template
// (ATen/ParallelOpenMP.h) that splits work only in files compiled with -fopenmp and otherwise
// runs every task on the calling thread, silently (docs/build.md, "OpenMP").
#pragma once
#include <cstdint>

namespace attnlab::kernels {

/// The number of distinct threads at::parallel_for gives `tasks` one-element tasks here.
int64_t parallel_for_threads(int64_t tasks);

}  // namespace attnlab::kernels
