// GPU self-test of the cait kernels without TensorRT: each kernel on random inputs of every preset
// shape against a float64 host reference, once launched directly and once replayed from a CUDA
// graph (the plugins' enqueue must be capturable), then timed against the analytic minimum bytes
// (read Q, K, V once, write O once). Every talking-heads variant runs on every preset (the
// tensor-core ones in fp16 on sm_80+); the plugin picks one with talkingHeadsPlan(kAuto). Exit
// status 0 only when every check passes.
//
//   cait_kernel_selftest [--batch B] [--iters N] [--quick]
#include "classAttentionPlugin/classAttentionKernel.h"
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace
{

#define CUDA_OK(call)                                                                                                  \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess)                                                                                         \
        {                                                                                                              \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                 \
            std::exit(2);                                                                                              \
        }                                                                                                              \
    } while (0)

struct Preset
{
    char const* name;
    int heads;
    int tokens; // N patches; class attention sees T = N + 1
};

// Head size 48 in every CaiT preset.
Preset const kPresets[] = {{"xxs_224", 4, 196}, {"xxs_384", 4, 576}, {"xs_384", 6, 576}, {"s_224", 8, 196},
    {"s_384", 8, 576}, {"m_384", 16, 576}, {"m_448", 16, 784}};
constexpr int kHeadSize = 48;

template <typename T>
T fromF(float x);
template <>
float fromF<float>(float x)
{
    return x;
}
template <>
__half fromF<__half>(float x)
{
    return __float2half_rn(x);
}
double toD(float x)
{
    return x;
}
double toD(__half x)
{
    return __half2float(x);
}

template <typename T>
std::vector<T> randomVector(size_t n, float stddev, std::mt19937& rng)
{
    std::normal_distribution<float> dist(0.F, stddev);
    std::vector<T> v(n);
    for (auto& x : v)
    {
        x = fromF<T>(dist(rng));
    }
    return v;
}

// float64 reference of the fused-op contract for images [0, checkImages).
template <typename T>
std::vector<double> referenceTalkingHeads(std::vector<T> const& qkv, cait::TalkingHeadsParams const& p, int checkImages)
{
    int const N = p.tokens, H = p.heads, d = p.headSize, C = H * d;
    std::vector<double> out(static_cast<size_t>(checkImages) * N * C, 0.0);
    std::vector<double> s(static_cast<size_t>(H) * N), m(static_cast<size_t>(H) * N);
    for (int b = 0; b < checkImages; ++b)
    {
        T const* x = qkv.data() + static_cast<size_t>(b) * N * 3 * C;
        for (int i = 0; i < N; ++i)
        {
            for (int h = 0; h < H; ++h)
            {
                for (int j = 0; j < N; ++j)
                {
                    double acc = 0;
                    for (int t = 0; t < d; ++t)
                    {
                        acc += toD(x[static_cast<size_t>(i) * 3 * C + h * d + t])
                            * toD(x[static_cast<size_t>(j) * 3 * C + C + h * d + t]);
                    }
                    s[static_cast<size_t>(h) * N + j] = p.scale * acc;
                }
            }
            for (int o = 0; o < H; ++o)
            {
                for (int j = 0; j < N; ++j)
                {
                    double acc = p.preBias[o];
                    for (int h = 0; h < H; ++h)
                    {
                        acc += p.preWeight[o * H + h] * s[static_cast<size_t>(h) * N + j];
                    }
                    m[static_cast<size_t>(o) * N + j] = acc;
                }
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < N; ++j)
                {
                    mx = std::max(mx, m[static_cast<size_t>(o) * N + j]);
                }
                for (int j = 0; j < N; ++j)
                {
                    sum += (m[static_cast<size_t>(o) * N + j] = std::exp(m[static_cast<size_t>(o) * N + j] - mx));
                }
                for (int j = 0; j < N; ++j)
                {
                    m[static_cast<size_t>(o) * N + j] /= sum;
                }
            }
            for (int o = 0; o < H; ++o)
            {
                for (int j = 0; j < N; ++j)
                {
                    double acc = p.postBias[o];
                    for (int h = 0; h < H; ++h)
                    {
                        acc += p.postWeight[o * H + h] * m[static_cast<size_t>(h) * N + j];
                    }
                    s[static_cast<size_t>(o) * N + j] = acc;
                }
            }
            double* o = out.data() + (static_cast<size_t>(b) * N + i) * C;
            for (int h = 0; h < H; ++h)
            {
                for (int j = 0; j < N; ++j)
                {
                    double const pj = s[static_cast<size_t>(h) * N + j];
                    T const* v = x + static_cast<size_t>(j) * 3 * C + 2 * C + h * d;
                    for (int t = 0; t < d; ++t)
                    {
                        o[h * d + t] += pj * toD(v[t]);
                    }
                }
            }
        }
    }
    return out;
}

template <typename T>
std::vector<double> referenceClassAttention(std::vector<T> const& q, std::vector<T> const& k, std::vector<T> const& v,
    cait::ClassAttentionParams const& p, int checkImages)
{
    int const Tn = p.tokens, H = p.heads, d = p.headSize, C = H * d;
    std::vector<double> out(static_cast<size_t>(checkImages) * C, 0.0), s(Tn);
    for (int b = 0; b < checkImages; ++b)
    {
        for (int h = 0; h < H; ++h)
        {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < Tn; ++j)
            {
                double acc = 0;
                for (int t = 0; t < d; ++t)
                {
                    acc += toD(q[static_cast<size_t>(b) * C + h * d + t])
                        * toD(k[(static_cast<size_t>(b) * Tn + j) * C + h * d + t]);
                }
                s[j] = p.scale * acc;
                mx = std::max(mx, s[j]);
            }
            for (int j = 0; j < Tn; ++j)
            {
                sum += (s[j] = std::exp(s[j] - mx));
            }
            for (int j = 0; j < Tn; ++j)
            {
                for (int t = 0; t < d; ++t)
                {
                    out[static_cast<size_t>(b) * C + h * d + t]
                        += s[j] / sum * toD(v[(static_cast<size_t>(b) * Tn + j) * C + h * d + t]);
                }
            }
        }
    }
    return out;
}

template <typename T>
double relError(std::vector<T> const& got, std::vector<double> const& ref)
{
    double maxDiff = 0, maxRef = 0;
    for (size_t i = 0; i < ref.size(); ++i)
    {
        maxDiff = std::max(maxDiff, std::fabs(toD(got[i]) - ref[i]));
        maxRef = std::max(maxRef, std::fabs(ref[i]));
    }
    return maxDiff / std::max(maxRef, 1e-30);
}

template <typename T>
T* toDevice(std::vector<T> const& h)
{
    T* d = nullptr;
    CUDA_OK(cudaMalloc(&d, h.size() * sizeof(T)));
    CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

// Direct launch, graph replay (must give identical bits), then the timed loop; returns ms/launch.
template <typename Launch>
float runChecked(Launch const& launch, void* dOut, size_t outBytes, std::vector<unsigned char>& first, int iters,
    bool& graphOk)
{
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_OK(launch(stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    first.resize(outBytes);
    CUDA_OK(cudaMemcpy(first.data(), dOut, outBytes, cudaMemcpyDeviceToHost));

    CUDA_OK(cudaMemset(dOut, 0, outBytes));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    CUDA_OK(launch(stream));
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(cudaGraphInstantiateWithFlags(&exec, graph, 0)); // not cudaGraphInstantiate: its signature changed in CUDA 12
    CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<unsigned char> replay(outBytes);
    CUDA_OK(cudaMemcpy(replay.data(), dOut, outBytes, cudaMemcpyDeviceToHost));
    graphOk = replay == first;

    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    for (int i = 0; i < 3; ++i)
    {
        CUDA_OK(cudaGraphLaunch(exec, stream));
    }
    CUDA_OK(cudaEventRecord(start, stream));
    for (int i = 0; i < iters; ++i)
    {
        CUDA_OK(cudaGraphLaunch(exec, stream));
    }
    CUDA_OK(cudaEventRecord(stop, stream));
    CUDA_OK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    CUDA_OK(cudaGraphExecDestroy(exec));
    CUDA_OK(cudaGraphDestroy(graph));
    CUDA_OK(cudaEventDestroy(start));
    CUDA_OK(cudaEventDestroy(stop));
    CUDA_OK(cudaStreamDestroy(stream));
    return ms / iters;
}

char const* variantName(cait::TalkingHeadsVariant v)
{
    switch (v)
    {
    case cait::TalkingHeadsVariant::kFullRow: return "full-row";
    case cait::TalkingHeadsVariant::kStreaming: return "streaming";
    case cait::TalkingHeadsVariant::kTensorCoreOnePass: return "tc-1pass";
    case cait::TalkingHeadsVariant::kTensorCoreTwoPass: return "tc-2pass";
    case cait::TalkingHeadsVariant::kTensorCoreSplit: return "tc-split";
    case cait::TalkingHeadsVariant::kAuto: break;
    }
    return "auto";
}

template <typename T>
bool testTalkingHeads(Preset const& preset, int batch, int iters, cait::TalkingHeadsDevice const& device,
    std::mt19937& rng, cait::TalkingHeadsVariant variant)
{
    cait::TalkingHeadsParams p{};
    p.batch = batch;
    p.tokens = preset.tokens;
    p.heads = preset.heads;
    p.headSize = kHeadSize;
    p.scale = 1.F / std::sqrt(static_cast<float>(kHeadSize));
    std::normal_distribution<float> w(0.F, 1.F / std::sqrt(static_cast<float>(p.heads)));
    for (int i = 0; i < p.heads * p.heads; ++i)
    {
        p.preWeight[i] = w(rng) + (i % (p.heads + 1) == 0 ? 1.F : 0.F);
        p.postWeight[i] = w(rng) + (i % (p.heads + 1) == 0 ? 1.F : 0.F);
    }
    for (int i = 0; i < p.heads; ++i)
    {
        p.preBias[i] = 0.1F * w(rng);
        p.postBias[i] = 0.01F * w(rng);
    }
    size_t const C = static_cast<size_t>(p.heads) * kHeadSize;
    size_t const inElems = static_cast<size_t>(batch) * p.tokens * 3 * C;
    size_t const outElems = static_cast<size_t>(batch) * p.tokens * C;
    std::vector<T> qkv = randomVector<T>(inElems, 1.5F, rng);
    T* dIn = toDevice(qkv);
    T* dOut = nullptr;
    CUDA_OK(cudaMalloc(&dOut, outElems * sizeof(T)));
    constexpr bool kFp16 = sizeof(T) == 2;
    // The workspace a plugin gets for this shape (key splits of small grids; 0 for fp32).
    size_t const wsBytes = kFp16 ? cait::talkingHeadsWorkspaceBytes(batch, p.heads, p.tokens, p.headSize, device) : 0;
    cait::TalkingHeadsPlan const plan
        = cait::talkingHeadsPlan(batch, p.heads, p.tokens, p.headSize, kFp16, true, device, variant, 0, wsBytes);
    if (plan.rows == 0)
    {
        std::printf("skip talking_heads %s %s: this variant does not fit or does not apply\n", preset.name,
            variantName(variant));
        CUDA_OK(cudaFree(dIn));
        CUDA_OK(cudaFree(dOut));
        return true;
    }
    void* dWs = nullptr;
    if (wsBytes > 0)
    {
        CUDA_OK(cudaMalloc(&dWs, wsBytes));
        CUDA_OK(cudaMemset(dWs, 0xff, wsBytes)); // NaN: the kernels must initialize what they read
    }
    auto launch = [&](cudaStream_t s) {
        return cait::launchTalkingHeads<T>(
            p, dIn, dOut, device, s, plan.variant, plan.rows, dWs, wsBytes, plan.splits);
    };
    std::vector<unsigned char> raw;
    bool graphOk = false;
    float const ms = runChecked(launch, dOut, outElems * sizeof(T), raw, iters, graphOk);
    std::vector<T> out(outElems);
    std::memcpy(out.data(), raw.data(), raw.size());
    int const checkImages = std::min(batch, 2);
    double const err = relError(out, referenceTalkingHeads(qkv, p, checkImages));
    double const tol = sizeof(T) == 4 ? 1e-5 : 2e-3;
    double const minBytes = static_cast<double>(inElems + outElems) * sizeof(T);
    bool const ok = err <= tol && graphOk;
    // Tensor-core FLOPs of the math (QK^T and P'V): 4 * B * H * N^2 * d.
    double const flops = 4.0 * batch * p.heads * static_cast<double>(p.tokens) * p.tokens * kHeadSize;
    std::printf("%-4s talking_heads  %-8s B=%-3d H=%-2d N=%-4d %-9s rows=%-2d chunk/splits=%-2d smem=%6zu B  err=%.2e %s "
                "graph=%s  %8.3f ms  %7.1f GB/s of minimum bytes (%.1f MB)  %6.1f TFLOP/s\n",
        sizeof(T) == 4 ? "fp32" : "fp16", preset.name, batch, p.heads, p.tokens, variantName(plan.variant), plan.rows,
        plan.variant == cait::TalkingHeadsVariant::kTensorCoreSplit ? plan.splits : plan.chunk, plan.smemBytes, err,
        err <= tol ? "ok " : "BAD", graphOk ? "ok" : "BAD", ms, minBytes / (ms * 1e-3) / 1e9, minBytes / 1e6,
        flops / (ms * 1e-3) / 1e12);
    CUDA_OK(cudaFree(dWs));
    CUDA_OK(cudaFree(dIn));
    CUDA_OK(cudaFree(dOut));
    return ok;
}

template <typename T>
bool testClassAttention(Preset const& preset, int batch, int iters, size_t maxSmem, std::mt19937& rng)
{
    cait::ClassAttentionParams p{batch, preset.tokens + 1, preset.heads, kHeadSize, 1.F / std::sqrt(48.F)};
    size_t const C = static_cast<size_t>(p.heads) * kHeadSize;
    size_t const kvElems = static_cast<size_t>(batch) * p.tokens * C;
    std::vector<T> q = randomVector<T>(batch * C, 2.F, rng);
    std::vector<T> k = randomVector<T>(kvElems, 2.F, rng);
    std::vector<T> v = randomVector<T>(kvElems, 1.F, rng);
    T* dq = toDevice(q);
    T* dk = toDevice(k);
    T* dv = toDevice(v);
    T* dOut = nullptr;
    CUDA_OK(cudaMalloc(&dOut, batch * C * sizeof(T)));
    auto launch = [&](cudaStream_t s) { return cait::launchClassAttention<T>(p, dq, dk, dv, dOut, maxSmem, s); };
    std::vector<unsigned char> raw;
    bool graphOk = false;
    float const ms = runChecked(launch, dOut, batch * C * sizeof(T), raw, iters, graphOk);
    std::vector<T> out(batch * C);
    std::memcpy(out.data(), raw.data(), raw.size());
    double const err = relError(out, referenceClassAttention(q, k, v, p, batch));
    double const tol = sizeof(T) == 4 ? 1e-5 : 2e-3;
    double const minBytes = static_cast<double>(2 * kvElems + 2 * batch * C) * sizeof(T);
    bool const ok = err <= tol && graphOk;
    std::printf("%-4s class_attn     %-8s B=%-3d H=%-2d T=%-4d smem=%6zu B  err=%.2e %s graph=%s  %8.3f ms  %7.1f GB/s "
                "of minimum bytes (%.1f MB)\n",
        sizeof(T) == 4 ? "fp32" : "fp16", preset.name, batch, p.heads, p.tokens,
        cait::classAttentionSmemBytes(p.tokens, p.headSize), err, err <= tol ? "ok " : "BAD", graphOk ? "ok" : "BAD",
        ms, minBytes / (ms * 1e-3) / 1e9, minBytes / 1e6);
    CUDA_OK(cudaFree(dq));
    CUDA_OK(cudaFree(dk));
    CUDA_OK(cudaFree(dv));
    CUDA_OK(cudaFree(dOut));
    return ok;
}

} // namespace

int main(int argc, char** argv)
{
    int batch = 8;
    int iters = 20;
    bool quick = false;
    for (int i = 1; i < argc; ++i)
    {
        std::string const a = argv[i];
        if (a == "--batch" && i + 1 < argc)
        {
            batch = std::atoi(argv[++i]);
        }
        else if (a == "--iters" && i + 1 < argc)
        {
            iters = std::atoi(argv[++i]);
        }
        else if (a == "--quick")
        {
            quick = true;
        }
        else
        {
            std::fprintf(stderr, "usage: %s [--batch B] [--iters N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    int device = 0;
    CUDA_OK(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    CUDA_OK(cudaGetDeviceProperties(&prop, device));
    int optin = 0;
    CUDA_OK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    size_t const maxSmem = static_cast<size_t>(optin);
    cait::TalkingHeadsDevice const thDevice{maxSmem, prop.multiProcessorCount, prop.major * 10 + prop.minor};
    std::printf("device: %s (sm_%d%d), %d SMs, shared memory per block (opt-in) %d B\n", prop.name, prop.major,
        prop.minor, prop.multiProcessorCount, optin);
    CUDA_OK(cait::talkingHeadsPrepare(maxSmem));
    CUDA_OK(cait::classAttentionPrepare(maxSmem));

    std::mt19937 rng(1234);
    bool ok = true;
    for (Preset const& preset : kPresets)
    {
        if (quick && preset.tokens > 196)
        {
            continue;
        }
        // Every variant on every preset: the timings are what the planner's thresholds are tuned on.
        for (auto v : {cait::TalkingHeadsVariant::kFullRow, cait::TalkingHeadsVariant::kStreaming})
        {
            ok &= testTalkingHeads<float>(preset, batch, iters, thDevice, rng, v);
            ok &= testTalkingHeads<__half>(preset, batch, iters, thDevice, rng, v);
        }
        for (auto v : {cait::TalkingHeadsVariant::kTensorCoreOnePass, cait::TalkingHeadsVariant::kTensorCoreTwoPass,
                 cait::TalkingHeadsVariant::kTensorCoreSplit, cait::TalkingHeadsVariant::kAuto})
        {
            ok &= testTalkingHeads<__half>(preset, batch, iters, thDevice, rng, v);
        }
        // Batch 1, where large GPUs split the keys (the planner's choice, and the split forced).
        if (batch != 1)
        {
            for (auto v : {cait::TalkingHeadsVariant::kTensorCoreSplit, cait::TalkingHeadsVariant::kAuto})
            {
                ok &= testTalkingHeads<__half>(preset, 1, iters, thDevice, rng, v);
            }
        }
        ok &= testClassAttention<float>(preset, batch, iters, maxSmem, rng);
        ok &= testClassAttention<__half>(preset, batch, iters, maxSmem, rng);
    }
    std::printf("%s\n", ok ? "ALL PASSED" : "FAILURES");
    return ok ? 0 : 1;
}
