# Finds LibTorch inside the PyPI torch wheel (see docs/build.md).
#
# The CUDA wheel's Caffe2 config insists on a CUDA toolkit with a matching nvcc even on a machine
# without a GPU, so the toolkit is located *before* find_package(Torch), the arch list is pinned
# (the auto-detect fallback names archs CUDA 13 cannot build), and the legacy CUDA::nvToolsExt
# target is shimmed onto header-only NVTX3 (CUDA >= 12.9 ships no libnvToolsExt).

if(NOT ATTNLAB_PYTHON)
  set(ATTNLAB_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python")
endif()
if(NOT Torch_DIR AND EXISTS "${ATTNLAB_PYTHON}")
  execute_process(
    COMMAND "${ATTNLAB_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "attnlab: '${ATTNLAB_PYTHON}' cannot import torch; run tools/setup.sh")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()

if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "9.0")
endif()
set(ENV{TORCH_CUDA_ARCH_LIST} "${TORCH_CUDA_ARCH_LIST}")

find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND AND NOT TARGET CUDA::nvToolsExt)
  if(NOT TARGET CUDA::nvtx3)
    add_library(CUDA::nvtx3 INTERFACE IMPORTED)
    target_include_directories(CUDA::nvtx3 INTERFACE "${CUDAToolkit_INCLUDE_DIRS}")
  endif()
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
  target_link_libraries(CUDA::nvToolsExt INTERFACE CUDA::nvtx3)
  target_compile_definitions(CUDA::nvToolsExt INTERFACE TORCH_CUDA_USE_NVTX3)
endif()

find_package(Torch REQUIRED)
message(STATUS "attnlab: torch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}")

# at::parallel_for is a header template (ATen/ParallelOpenMP.h): it splits work across threads
# only in files compiled with -fopenmp, and runs everything on the calling thread otherwise.
# Targets that call it link attnlab_openmp. Their OpenMP calls must reach the runtime torch itself
# loads (the wheel bundles its own libgomp.so.1), so that one is linked, not the compiler's.
find_library(ATTNLAB_TORCH_GOMP NAMES libgomp.so.1 PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
add_library(attnlab_openmp INTERFACE)
target_compile_options(attnlab_openmp INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fopenmp>)
if(ATTNLAB_TORCH_GOMP)
  target_link_libraries(attnlab_openmp INTERFACE "${ATTNLAB_TORCH_GOMP}")
else()
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  target_link_libraries(attnlab_openmp INTERFACE OpenMP::OpenMP_CXX)
endif()
message(STATUS "attnlab: OpenMP runtime ${ATTNLAB_TORCH_GOMP}")
