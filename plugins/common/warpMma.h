// Warp-level tensor-core primitives (sm_80+), written once for nvcc (inline PTX) and for the host
// emulation (cudaEmu.h follows the PTX ISA fragment layouts). Fragments are 32-bit registers
// holding two fp16 values, the lower index in the low half.
//
// Why mma.sync + ldmatrix rather than WMMA: the kernels need to know which thread holds which
// element (softmax statistics are reduced across the threads of a quad, score tiles are written
// to shared memory in the layout the next mma reads, the contraction axis is permuted so that
// operands load with 8-byte vector loads). WMMA's fragment layout is opaque by contract, so none
// of that could be written against it.
#pragma once

#include "common/kernelCompat.h"

#include <cstdint>

namespace cait
{

// Vector global loads/stores of fp16 data; the caller guarantees the alignment (4 / 8 bytes).
__device__ __forceinline__ uint32_t load32(__half const* p)
{
#if defined(CAIT_EMULATION)
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
#else
    return __ldg(reinterpret_cast<unsigned int const*>(p));
#endif
}

__device__ __forceinline__ uint2 load64(__half const* p)
{
#if defined(CAIT_EMULATION)
    uint2 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
#else
    return __ldg(reinterpret_cast<uint2 const*>(p));
#endif
}

__device__ __forceinline__ void store64(__half* p, uint32_t lo, uint32_t hi)
{
#if defined(CAIT_EMULATION)
    uint2 const v{lo, hi};
    std::memcpy(static_cast<void*>(p), &v, sizeof(v));
#else
    *reinterpret_cast<uint2*>(p) = make_uint2(lo, hi);
#endif
}

// Two fp16 values (round to nearest) in one register: `lo` in bits 0..15.
__device__ __forceinline__ uint32_t packHalf2(float lo, float hi)
{
    __half2 const h = __floats2half2_rn(lo, hi);
#if defined(CAIT_EMULATION)
    uint32_t bits;
    std::memcpy(&bits, &h, sizeof(bits));
    return bits;
#else
    return *reinterpret_cast<uint32_t const*>(&h);
#endif
}

__device__ __forceinline__ float lowHalfToFloat(uint32_t bits)
{
    return __half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu)));
}

__device__ __forceinline__ float highHalfToFloat(uint32_t bits)
{
    return __half2float(__ushort_as_half(static_cast<unsigned short>(bits >> 16)));
}

// The low halves of a and b as one register (a's in bits 0..15); the high halves likewise. One
// byte permute each on the GPU (nvcc makes two instructions of the shift-and-mask form).
__device__ __forceinline__ uint32_t lowHalves(uint32_t a, uint32_t b)
{
#if defined(CAIT_EMULATION)
    return (a & 0xffffu) | (b << 16);
#else
    return __byte_perm(a, b, 0x5410);
#endif
}
__device__ __forceinline__ uint32_t highHalves(uint32_t a, uint32_t b)
{
#if defined(CAIT_EMULATION)
    return (a >> 16) | (b & 0xffff0000u);
#else
    return __byte_perm(a, b, 0x7632);
#endif
}

// 2^x on the special-function unit (ex2.approx: max relative error 2^-22, subnormal results
// flushed to zero, which only ever drops probabilities below 1e-38 of the row maximum).
__device__ __forceinline__ float fastExp2(float x)
{
#if defined(CAIT_EMULATION)
    return std::exp2(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// d += a * b, m16n8k16, fp16 inputs, fp32 accumulators.
__device__ __forceinline__ void mmaM16N8K16(float (&d)[4], uint32_t const (&a)[4], uint32_t const (&b)[2])
{
#if defined(CAIT_EMULATION)
    cuda_emu::mma(d, a, b, d, 16);
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// d += a * b, m16n8k8, fp16 inputs, fp32 accumulators.
__device__ __forceinline__ void mmaM16N8K8(float (&d)[4], uint32_t const (&a)[2], uint32_t b)
{
#if defined(CAIT_EMULATION)
    uint32_t const bb[1] = {b};
    cuda_emu::mma(d, a, bb, d, 8);
#else
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
#endif
}

// ldmatrix.m8n8.x4[.trans]: lane l gives the address of row l % 8 of matrix l / 8 (16 bytes,
// 16-byte aligned, shared memory); register i receives matrix i's elements (l / 4, 2(l % 4) + {0, 1}),
// transposed: (2(l % 4) + {0, 1}, l / 4). The "memory" clobber keeps ordinary shared-memory
// stores of the same thread on their side of the load.
template <bool kTrans = false>
__device__ __forceinline__ void ldmatrixX4(uint32_t (&r)[4], void const* row)
{
#if defined(CAIT_EMULATION)
    cuda_emu::ldmatrix(r, 4, kTrans, row);
#else
    unsigned const addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
    if constexpr (kTrans)
    {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(addr)
                     : "memory");
    }
    else
    {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(addr)
                     : "memory");
    }
#endif
}

} // namespace cait
