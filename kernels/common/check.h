// Argument checks for kernels that print the name, the expected and the actual values.
#pragma once
#include <c10/util/Exception.h>

#define ATTNLAB_CHECK(cond, ...) TORCH_CHECK(cond, __VA_ARGS__)

/// ATTNLAB_CHECK_SHAPE(k, B, H, T, d): "k has shape [2, 4, 7, 8], expected [2, 4, 7, 16]".
#define ATTNLAB_CHECK_SHAPE(t, ...)                                                        \
  TORCH_CHECK((t).sizes() == c10::IntArrayRef(std::initializer_list<int64_t>{__VA_ARGS__}), \
              #t " has shape ", (t).sizes(), ", expected ",                              \
              c10::IntArrayRef(std::initializer_list<int64_t>{__VA_ARGS__}))
