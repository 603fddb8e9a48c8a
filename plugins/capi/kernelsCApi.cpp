// C ABI over the shipped kernel sources, for Python (ctypes) without TensorRT:
//  - built by g++ with CAIT_EMULATION: the kernels run on the host through common/cudaEmu.h, and
//    tests/plugins/ compares them with the NumPy reference (pointers are host memory, the stream
//    is ignored);
//  - built by nvcc (`-x cu`): the same functions launch on the GPU on the given stream (pointers
//    are device memory), which is how scripts/bench_attention_gpu.py times the kernels against
//    PyTorch.
// The kernel .cu files are #included, so there is exactly one copy of every kernel.
#include "classAttentionPlugin/classAttentionKernel.cu"
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.cu"
#include "talkingHeadsAttentionPlugin/talkingHeadsTensorCore.cu"

#include <cstring>

namespace
{

// One warp: lane l's operand registers in, its accumulators out (layout probes; see below).
template <int K>
__global__ void mmaProbeKernel(uint32_t const* a, uint32_t const* b, float* d)
{
#if defined(CAIT_EMULATION) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
    int const lane = static_cast<int>(threadIdx.x);
    float acc[4] = {d[4 * lane], d[4 * lane + 1], d[4 * lane + 2], d[4 * lane + 3]};
    if constexpr (K == 16)
    {
        uint32_t const av[4] = {a[4 * lane], a[4 * lane + 1], a[4 * lane + 2], a[4 * lane + 3]};
        uint32_t const bv[2] = {b[2 * lane], b[2 * lane + 1]};
        cait::mmaM16N8K16(acc, av, bv);
    }
    else
    {
        uint32_t const av[2] = {a[4 * lane], a[4 * lane + 1]};
        cait::mmaM16N8K8(acc, av, b[2 * lane]);
    }
    for (int i = 0; i < 4; ++i)
    {
        d[4 * lane + i] = acc[i];
    }
#endif
}

// One warp: a 32 x 8 matrix of b16 in shared memory; lane l gives row l; out: 4 registers per lane.
__global__ void ldmatrixProbeKernel(uint16_t const* matrix, int trans, uint32_t* out)
{
#if defined(CAIT_EMULATION) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750)
    __align__(16) __shared__ uint16_t tile[32 * 8];
    int const lane = static_cast<int>(threadIdx.x);
    for (int i = 0; i < 8; ++i)
    {
        tile[lane * 8 + i] = matrix[lane * 8 + i];
    }
    __syncwarp();
    uint32_t r[4];
    if (trans)
    {
        cait::ldmatrixX4<true>(r, tile + lane * 8);
    }
    else
    {
        cait::ldmatrixX4(r, tile + lane * 8);
    }
    for (int i = 0; i < 4; ++i)
    {
        out[4 * lane + i] = r[i];
    }
#endif
}

} // namespace

extern "C"
{

// Layout probes of the warp-level primitives, so that the fragment layouts the emulation assumes
// can be checked against an independent statement of them (tests/plugins/test_warp_layouts.py,
// CUTLASS's thread-value layouts) and, on a GPU, against the hardware
// (scripts/bench_attention_gpu.py). a: 32 x 4 registers, b: 32 x 2, d: 32 x 4 accumulators
// (in: C, out: D); K = 16 or 8. Pointers are host memory (emulation) or device memory (GPU).
int cait_probe_mma(int K, uint32_t const* a, uint32_t const* b, float* d, void* stream)
{
    auto const s = static_cast<cudaStream_t>(stream);
    if (K == 16)
    {
        return CAIT_LAUNCH(mmaProbeKernel<16>, dim3(1), dim3(32), 0, s, a, b, d);
    }
    if (K == 8)
    {
        return CAIT_LAUNCH(mmaProbeKernel<8>, dim3(1), dim3(32), 0, s, a, b, d);
    }
    return cudaErrorInvalidValue;
}

// matrix: 32 rows x 8 b16 (row i = lane i's address); out: 32 x 4 registers of ldmatrix.x4.
int cait_probe_ldmatrix(uint16_t const* matrix, int trans, uint32_t* out, void* stream)
{
    return CAIT_LAUNCH(ldmatrixProbeKernel, dim3(1), dim3(32), 0, static_cast<cudaStream_t>(stream), matrix, trans,
        out);
}

// dtype: 0 = fp32, 1 = fp16 (raw uint16 bits); variant: a cait::TalkingHeadsVariant; rows: 0 lets
// the planner choose. The device is described by its opt-in shared memory per block, SM count
// and SM version (major * 10 + minor). Returns 0 on success, the CUDA error otherwise.
// `workspace` (may be null) of `workspaceBytes` lets small grids split the keys; `splits` 0 lets
// the planner choose.
int cait_talking_heads(int dtype, int batch, int tokens, int heads, int headSize, float scale,
    float const* preWeight, float const* preBias, float const* postWeight, float const* postBias, void const* qkv,
    void* out, long long maxSmemBytes, int smCount, int smVersion, int variant, int rows, void* workspace,
    long long workspaceBytes, int splits, void* stream)
{
    if (heads <= 0 || heads > cait::kThMaxHeads)
    {
        return cudaErrorInvalidValue;
    }
    cait::TalkingHeadsParams p{};
    p.batch = batch;
    p.tokens = tokens;
    p.heads = heads;
    p.headSize = headSize;
    p.scale = scale;
    std::memcpy(p.preWeight, preWeight, sizeof(float) * heads * heads);
    std::memcpy(p.preBias, preBias, sizeof(float) * heads);
    std::memcpy(p.postWeight, postWeight, sizeof(float) * heads * heads);
    std::memcpy(p.postBias, postBias, sizeof(float) * heads);
    cait::TalkingHeadsDevice const device{static_cast<size_t>(maxSmemBytes), smCount, smVersion};
    auto const v = static_cast<cait::TalkingHeadsVariant>(variant);
    auto const s = static_cast<cudaStream_t>(stream);
    if (dtype == 0)
    {
        return cait::launchTalkingHeads<float>(p, static_cast<float const*>(qkv), static_cast<float*>(out), device, s,
            v, rows, workspace, static_cast<size_t>(workspaceBytes), splits);
    }
    return cait::launchTalkingHeads<__half>(p, static_cast<__half const*>(qkv), static_cast<__half*>(out), device, s,
        v, rows, workspace, static_cast<size_t>(workspaceBytes), splits);
}

int cait_talking_heads_rows(int heads, int tokens, int headSize, long long maxSmemBytes)
{
    return cait::talkingHeadsRowsPerBlock(heads, tokens, headSize, static_cast<size_t>(maxSmemBytes));
}

// out7: variant, rows, chunk, shared memory bytes, threads, key splits, workspace bytes of the
// plan for this shape (8-byte aligned tensors, `workspaceBytes` of workspace offered).
void cait_talking_heads_plan(int batch, int heads, int tokens, int headSize, int fp16, long long maxSmemBytes,
    int smCount, int smVersion, int variant, int rows, long long workspaceBytes, int splits, long long* out7)
{
    cait::TalkingHeadsDevice const device{static_cast<size_t>(maxSmemBytes), smCount, smVersion};
    cait::TalkingHeadsPlan const plan = cait::talkingHeadsPlan(batch, heads, tokens, headSize, fp16 != 0, true,
        device, static_cast<cait::TalkingHeadsVariant>(variant), rows, static_cast<size_t>(workspaceBytes), splits);
    out7[0] = static_cast<long long>(plan.variant);
    out7[1] = plan.rows;
    out7[2] = plan.chunk;
    out7[3] = static_cast<long long>(plan.smemBytes);
    out7[4] = plan.threads;
    out7[5] = plan.splits;
    out7[6] = static_cast<long long>(plan.workspaceBytes);
}

// The workspace a plugin would ask for at this (largest) shape.
long long cait_talking_heads_workspace(
    int batch, int heads, int tokens, int headSize, long long maxSmemBytes, int smCount, int smVersion)
{
    cait::TalkingHeadsDevice const device{static_cast<size_t>(maxSmemBytes), smCount, smVersion};
    return static_cast<long long>(cait::talkingHeadsWorkspaceBytes(batch, heads, tokens, headSize, device));
}

int cait_class_attention(int dtype, int batch, int tokens, int heads, int headSize, float scale, void const* q,
    void const* k, void const* v, void* out, long long maxSmemBytes, void* stream)
{
    cait::ClassAttentionParams p{batch, tokens, heads, headSize, scale};
    size_t const smem = static_cast<size_t>(maxSmemBytes);
    auto const s = static_cast<cudaStream_t>(stream);
    if (dtype == 0)
    {
        return cait::launchClassAttention<float>(p, static_cast<float const*>(q), static_cast<float const*>(k),
            static_cast<float const*>(v), static_cast<float*>(out), smem, s);
    }
    return cait::launchClassAttention<__half>(p, static_cast<__half const*>(q), static_cast<__half const*>(k),
        static_cast<__half const*>(v), static_cast<__half*>(out), smem, s);
}

// Opts every kernel in to `maxSmemBytes` of dynamic shared memory (GPU build; no-op emulated).
int cait_prepare(long long maxSmemBytes)
{
    cudaError_t err = cait::talkingHeadsPrepare(static_cast<size_t>(maxSmemBytes));
    if (err == cudaSuccess)
    {
        err = cait::classAttentionPrepare(static_cast<size_t>(maxSmemBytes));
    }
    return err;
}

#if !defined(CAIT_EMULATION)
// The current device as the planner sees it.
int cait_device_info(int* smemOptin, int* smCount, int* smVersion)
{
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    int major = 0;
    int minor = 0;
    if (err == cudaSuccess)
    {
        err = cudaDeviceGetAttribute(smemOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    }
    if (err == cudaSuccess)
    {
        err = cudaDeviceGetAttribute(smCount, cudaDevAttrMultiProcessorCount, device);
    }
    if (err == cudaSuccess)
    {
        err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    }
    if (err == cudaSuccess)
    {
        err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    }
    *smVersion = major * 10 + minor;
    return err;
}
#else
// Threads of a block run in reverse index order (1) or in index order (0); see cudaEmu.h.
void cait_emu_set_reverse_order(int reverse)
{
    cuda_emu::setReverseOrder(reverse != 0);
}
#endif

} // extern "C"
