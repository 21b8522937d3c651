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
# loads, so that one is linked, not the compiler's: the PyPI wheel bundles libgomp.so.1 in
# torch/lib, auditwheel builds put a hashed libgomp-<hash>.so.1 in torch.libs, the LibTorch zip
# a hashed one in lib. (GCC only: clang's -fopenmp would want libomp's entry points.)
file(GLOB ATTNLAB_TORCH_GOMP_CANDIDATES "${TORCH_INSTALL_PREFIX}/lib/libgomp*.so*"
     "${TORCH_INSTALL_PREFIX}/../torch.libs/libgomp*.so*")
add_library(attnlab_openmp INTERFACE)
target_compile_options(attnlab_openmp INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fopenmp>)
if(ATTNLAB_TORCH_GOMP_CANDIDATES)
  list(GET ATTNLAB_TORCH_GOMP_CANDIDATES 0 ATTNLAB_TORCH_GOMP)
  target_link_libraries(attnlab_openmp INTERFACE "${ATTNLAB_TORCH_GOMP}")
  message(STATUS "attnlab: OpenMP runtime ${ATTNLAB_TORCH_GOMP} (torch's own)")
else()
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  target_link_libraries(attnlab_openmp INTERFACE OpenMP::OpenMP_CXX)
  message(WARNING "attnlab: no libgomp beside torch in ${TORCH_INSTALL_PREFIX}; linking the compiler's "
                  "OpenMP runtime. If torch loads another one, two runtimes will compete for the cores.")
endif()
