// Host build of the shipped kernel sources (CAIT_EMULATION) behind a C ABI for the pytest
// comparison with the NumPy reference (tests/plugins/test_kernels_emulated.py).
#include "classAttentionPlugin/classAttentionKernel.cu"
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.cu"

#include <cstring>

extern "C"
{

// dtype: 0 = fp32, 1 = fp16 (raw uint16 bits); variant: 0 auto, 1 full-row, 2 streaming.
// Returns 0 on success, the launch error otherwise.
int cait_emu_talking_heads(int dtype, int batch, int tokens, int heads, int headSize, float scale,
    float const* preWeight, float const* preBias, float const* postWeight, float const* postBias, void const* qkv,
    void* out, long long maxSmemBytes, int variant)
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
    size_t const smem = static_cast<size_t>(maxSmemBytes);
    auto const v = static_cast<cait::TalkingHeadsVariant>(variant);
    if (dtype == 0)
    {
        return cait::launchTalkingHeads<float>(
            p, static_cast<float const*>(qkv), static_cast<float*>(out), smem, nullptr, v);
    }
    return cait::launchTalkingHeads<__half>(
        p, static_cast<__half const*>(qkv), static_cast<__half*>(out), smem, nullptr, v);
}

int cait_emu_talking_heads_rows(int heads, int tokens, int headSize, long long maxSmemBytes)
{
    return cait::talkingHeadsRowsPerBlock(heads, tokens, headSize, static_cast<size_t>(maxSmemBytes));
}

// out4: variant, rows, chunk, shared memory bytes of the plan for this shape.
void cait_emu_talking_heads_plan(int heads, int tokens, int headSize, long long maxSmemBytes, int variant, long long* out4)
{
    cait::TalkingHeadsPlan const plan = cait::talkingHeadsPlan(heads, tokens, headSize,
        static_cast<size_t>(maxSmemBytes), static_cast<cait::TalkingHeadsVariant>(variant));
    out4[0] = static_cast<long long>(plan.variant);
    out4[1] = plan.rows;
    out4[2] = plan.chunk;
    out4[3] = static_cast<long long>(plan.smemBytes);
}

int cait_emu_class_attention(int dtype, int batch, int tokens, int heads, int headSize, float scale, void const* q,
    void const* k, void const* v, void* out, long long maxSmemBytes)
{
    cait::ClassAttentionParams p{batch, tokens, heads, headSize, scale};
    size_t const smem = static_cast<size_t>(maxSmemBytes);
    if (dtype == 0)
    {
        return cait::launchClassAttention<float>(p, static_cast<float const*>(q), static_cast<float const*>(k),
            static_cast<float const*>(v), static_cast<float*>(out), smem, nullptr);
    }
    return cait::launchClassAttention<__half>(p, static_cast<__half const*>(q), static_cast<__half const*>(k),
        static_cast<__half const*>(v), static_cast<__half*>(out), smem, nullptr);
}

} // extern "C"
