// What the cait kernels need from CUDA, written once for nvcc and for the host emulation build
// (CAIT_EMULATION, see cudaEmu.h), so that CI executes the very kernel source that ships.
#pragma once

#if defined(CAIT_EMULATION)
#include "cudaEmu.h"
#define CAIT_DYNAMIC_SMEM(ptrName) unsigned char* ptrName = CAIT_EMU_DYNAMIC_SMEM()
#define CAIT_LAUNCH(kernel, grid, block, smem, stream, ...)                                                          \
    ((void) (stream), cuda_emu::launch(kernel, grid, block, smem, __VA_ARGS__))
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define CAIT_DYNAMIC_SMEM(ptrName)                                                                                     \
    extern __shared__ __align__(16) unsigned char caitDynamicSmem[];                                                   \
    unsigned char* ptrName = caitDynamicSmem
// No cudaGetLastError here: it would clear a sticky error that belongs to someone else. The caller
// reads cudaPeekAtLastError, which is legal inside stream capture.
#define CAIT_LAUNCH(kernel, grid, block, smem, stream, ...)                                                          \
    (kernel<<<grid, block, smem, stream>>>(__VA_ARGS__), cudaPeekAtLastError())
#endif

#include <cstdint>

namespace cait
{

constexpr int kWarpSize = 32;

__device__ __forceinline__ float toFloat(float x)
{
    return x;
}
__device__ __forceinline__ float toFloat(__half x)
{
    return __half2float(x);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float x);
template <>
__device__ __forceinline__ float fromFloat<float>(float x)
{
    return x;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float x)
{
    return __float2half_rn(x);
}

__device__ __forceinline__ float warpMax(float v)
{
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1)
    {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    return v;
}

__device__ __forceinline__ float warpSum(float v)
{
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1)
    {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Block-wide max/sum; `scratch` holds one float per warp plus one. Every thread gets the result.
template <bool kIsMax>
__device__ __forceinline__ float blockReduce(float v, float* scratch)
{
    int const lane = threadIdx.x % kWarpSize;
    int const warp = threadIdx.x / kWarpSize;
    int const nWarps = blockDim.x / kWarpSize;
    v = kIsMax ? warpMax(v) : warpSum(v);
    if (lane == 0)
    {
        scratch[warp] = v;
    }
    __syncthreads();
    if (warp == 0)
    {
        float w = lane < nWarps ? scratch[lane] : (kIsMax ? -INFINITY : 0.F);
        w = kIsMax ? warpMax(w) : warpSum(w);
        if (lane == 0)
        {
            scratch[nWarps] = w;
        }
    }
    __syncthreads();
    float const r = scratch[nWarps];
    __syncthreads(); // scratch may be reused right after
    return r;
}

inline int64_t ceilDiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

} // namespace cait
