// Host test of the plugin glue without libnvinfer and without a GPU: the glue is compiled against
// the real TensorRT headers, the two libnvinfer entry points it uses (getLogger,
// getPluginRegistry) and the three CUDA runtime calls are stubbed here, and enqueue runs the
// emulated kernels (capi/kernelsCApi.cpp) on host memory. Checks the creators' validation, the
// kBUILD -> getFieldsToSerialize -> kRUNTIME round trip, type/format negotiation and enqueue.
#include "classAttentionPlugin/classAttentionPlugin.h"
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionPlugin.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

class CapturingLogger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kERROR)
        {
            last = msg;
            ++errors;
        }
    }
    std::string last;
    int errors{0};
};

CapturingLogger gLogger;
int gFailures = 0;

void expect(bool ok, std::string const& what)
{
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
    if (!ok)
    {
        ++gFailures;
    }
}

bool lastErrorContains(char const* text)
{
    bool const ok = gLogger.last.find(text) != std::string::npos;
    if (!ok)
    {
        std::printf("     last error was: '%s'\n", gLogger.last.c_str());
    }
    return ok;
}

struct Fields
{
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
    PluginFieldCollection const* get()
    {
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
        return &fc;
    }
    void drop(char const* name)
    {
        for (auto it = fields.begin(); it != fields.end(); ++it)
        {
            if (std::strcmp(it->name, name) == 0)
            {
                fields.erase(it);
                return;
            }
        }
    }
};

struct ThAttrs
{
    int32_t heads{4};
    float scale{0.25F};
    std::vector<float> w1, b1, w2, b2;
    explicit ThAttrs(int32_t h)
        : heads(h)
        , w1(h * h)
        , b1(h)
        , w2(h * h)
        , b2(h)
    {
        for (int i = 0; i < h * h; ++i)
        {
            w1[i] = (i % (h + 1) == 0 ? 1.F : 0.F) + 0.01F * static_cast<float>(i % 7);
            w2[i] = (i % (h + 1) == 0 ? 1.F : 0.F) - 0.02F * static_cast<float>(i % 5);
        }
        for (int i = 0; i < h; ++i)
        {
            b1[i] = 0.1F * static_cast<float>(i);
            b2[i] = -0.01F * static_cast<float>(i);
        }
    }
    Fields fields() const
    {
        Fields f;
        f.fields.emplace_back("num_heads", &heads, PluginFieldType::kINT32, 1);
        f.fields.emplace_back("scale", &scale, PluginFieldType::kFLOAT32, 1);
        f.fields.emplace_back("pre_weight", w1.data(), PluginFieldType::kFLOAT32, heads * heads);
        f.fields.emplace_back("pre_bias", b1.data(), PluginFieldType::kFLOAT32, heads);
        f.fields.emplace_back("post_weight", w2.data(), PluginFieldType::kFLOAT32, heads * heads);
        f.fields.emplace_back("post_bias", b2.data(), PluginFieldType::kFLOAT32, heads);
        return f;
    }
};

template <typename P>
std::unique_ptr<IPluginV3> own(P* p)
{
    return std::unique_ptr<IPluginV3>(p);
}

bool sameFields(PluginFieldCollection const* a, PluginFieldCollection const* b)
{
    if (a == nullptr || b == nullptr || a->nbFields != b->nbFields)
    {
        return false;
    }
    for (int i = 0; i < a->nbFields; ++i)
    {
        PluginField const& x = a->fields[i];
        PluginField const& y = b->fields[i];
        size_t const bytes = static_cast<size_t>(x.length) * 4; // int32 and float32 only
        if (std::strcmp(x.name, y.name) != 0 || x.type != y.type || x.length != y.length
            || std::memcmp(x.data, y.data, bytes) != 0)
        {
            return false;
        }
    }
    return true;
}

PluginTensorDesc desc(std::vector<int64_t> const& dims, DataType type)
{
    PluginTensorDesc d{};
    d.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
    {
        d.dims.d[i] = dims[i];
    }
    d.type = type;
    d.format = TensorFormat::kLINEAR;
    d.scale = 1.F;
    return d;
}

void testTalkingHeads()
{
    cait::TalkingHeadsAttentionPluginCreator creator;
    expect(std::string(creator.getPluginName()) == "CaitTalkingHeadsAttention"
            && std::string(creator.getPluginVersion()) == "1" && std::string(creator.getPluginNamespace()).empty(),
        "talking heads: name, version, namespace");
    expect(creator.getFieldNames()->nbFields == 6, "talking heads: creator lists 6 fields");

    ThAttrs attrs(4);
    Fields good = attrs.fields();
    auto plugin = own(creator.createPlugin("th", good.get(), TensorRTPhase::kBUILD));
    expect(plugin != nullptr, "talking heads: valid attributes create a plugin");
    if (!plugin)
    {
        return;
    }
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    expect(runtime && build && core && std::string(core->getPluginName()) == "CaitTalkingHeadsAttention",
        "talking heads: capabilities");

    PluginFieldCollection const* serialized = runtime->getFieldsToSerialize();
    auto restored = own(creator.createPlugin("th", serialized, TensorRTPhase::kRUNTIME));
    expect(restored != nullptr, "talking heads: kRUNTIME plugin from getFieldsToSerialize");
    if (restored)
    {
        auto* rt2 = static_cast<IPluginV3OneRuntime*>(restored->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        expect(sameFields(serialized, rt2->getFieldsToSerialize()), "talking heads: serialization round-trips");
    }

    // Validation: every failure must come back as nullptr plus an error naming the cause.
    {
        Fields f = attrs.fields();
        f.drop("num_heads");
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("missing attribute 'num_heads'"),
            "talking heads: missing num_heads rejected");
    }
    {
        Fields f = attrs.fields();
        f.drop("post_bias");
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("missing attribute 'post_bias'"),
            "talking heads: missing post_bias rejected");
    }
    {
        Fields f = attrs.fields();
        f.fields[2].length = 9; // pre_weight 3x3 with num_heads 4
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("'pre_weight' must have 16 values, got 9"),
            "talking heads: H*H mismatch rejected");
    }
    {
        Fields f = attrs.fields();
        f.fields[3].length = 3;
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("'pre_bias' must have 4 values"),
            "talking heads: wrong bias length rejected");
    }
    {
        Fields f = attrs.fields();
        f.fields[0].type = PluginFieldType::kFLOAT32;
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("must be an int"),
            "talking heads: num_heads of the wrong type rejected");
    }
    {
        ThAttrs big(17);
        Fields f = big.fields();
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("num_heads must be in [1, 16]"),
            "talking heads: num_heads above the kernel limit rejected");
    }
    {
        float nan = std::nanf("");
        Fields f = attrs.fields();
        f.fields[1].data = &nan;
        expect(creator.createPlugin("th", f.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("non-finite"),
            "talking heads: NaN scale rejected");
    }
    expect(creator.createPlugin("th", nullptr, TensorRTPhase::kBUILD) == nullptr, "talking heads: null collection");

    // Types and formats.
    DataType out{};
    DataType const half = DataType::kHALF;
    expect(build->getOutputDataTypes(&out, 1, &half, 1) == 0 && out == DataType::kHALF, "talking heads: fp16 out");
    DataType const i8 = DataType::kINT8;
    expect(build->getOutputDataTypes(&out, 1, &i8, 1) != 0, "talking heads: int8 input rejected");
    DynamicPluginTensorDesc io[2]{};
    io[0].desc = desc({2, 10, 96}, DataType::kHALF);
    io[1].desc = desc({2, 10, 32}, DataType::kHALF);
    expect(build->supportsFormatCombination(0, io, 1, 1) && build->supportsFormatCombination(1, io, 1, 1),
        "talking heads: fp16/fp16 linear supported");
    io[1].desc.type = DataType::kFLOAT;
    expect(!build->supportsFormatCombination(1, io, 1, 1), "talking heads: mixed dtypes refused");

    // Head size must divide C: 3*C = 99 is not 3 * 4 * d.
    PluginTensorDesc bad[2] = {desc({2, 10, 99}, DataType::kFLOAT), desc({2, 10, 33}, DataType::kFLOAT)};
    expect(runtime->onShapeChange(bad, 1, bad + 1, 1) != 0 && lastErrorContains("head size must divide C"),
        "talking heads: head size not dividing C rejected");

    // enqueue (emulated kernel) equals a direct launch of the same kernel.
    int32_t const B = 2, N = 19, H = 4, d = 8, C = H * d;
    std::vector<float> qkv(static_cast<size_t>(B) * N * 3 * C);
    for (size_t i = 0; i < qkv.size(); ++i)
    {
        qkv[i] = std::sin(0.37F * static_cast<float>(i)) * 1.5F;
    }
    std::vector<float> viaPlugin(static_cast<size_t>(B) * N * C, -1.F), direct(viaPlugin.size(), -2.F);
    PluginTensorDesc shapes[2] = {desc({B, N, 3 * C}, DataType::kFLOAT), desc({B, N, C}, DataType::kFLOAT)};
    void const* ins[1] = {qkv.data()};
    void* outs[1] = {viaPlugin.data()};
    auto attached = own(runtime->attachToContext(nullptr));
    auto* rt = static_cast<IPluginV3OneRuntime*>(attached->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    expect(rt->onShapeChange(shapes, 1, shapes + 1, 1) == 0, "talking heads: onShapeChange");
    expect(rt->enqueue(shapes, shapes + 1, ins, outs, nullptr, nullptr) == 0, "talking heads: enqueue fp32");
    cait::TalkingHeadsParams p{};
    p.batch = B;
    p.tokens = N;
    p.heads = H;
    p.headSize = d;
    p.scale = attrs.scale;
    std::memcpy(p.preWeight, attrs.w1.data(), attrs.w1.size() * 4);
    std::memcpy(p.preBias, attrs.b1.data(), attrs.b1.size() * 4);
    std::memcpy(p.postWeight, attrs.w2.data(), attrs.w2.size() * 4);
    std::memcpy(p.postBias, attrs.b2.data(), attrs.b2.size() * 4);
    expect(cait::launchTalkingHeads<float>(p, qkv.data(), direct.data(), cait::TalkingHeadsDevice{227 * 1024, 132, 90},
               nullptr)
            == cudaSuccess,
        "talking heads: direct launch");
    expect(viaPlugin == direct, "talking heads: enqueue passes the attributes through unchanged");

    // fp16 at head size 48 on the stubbed sm_90 device: enqueue runs the tensor-core kernel (bit for
    // bit its direct launch), not the CUDA-core one.
    int32_t const d16 = 48, C16 = H * d16;
    std::vector<__half> qkv16(static_cast<size_t>(B) * N * 3 * C16);
    for (size_t i = 0; i < qkv16.size(); ++i)
    {
        qkv16[i] = __float2half_rn(std::sin(0.37F * static_cast<float>(i)) * 1.5F);
    }
    std::vector<__half> plugin16(static_cast<size_t>(B) * N * C16), tc16(plugin16.size()), core16(plugin16.size());
    PluginTensorDesc shapes16[2] = {desc({B, N, 3 * C16}, DataType::kHALF), desc({B, N, C16}, DataType::kHALF)};
    void const* ins16[1] = {qkv16.data()};
    void* outs16[1] = {plugin16.data()};
    expect(rt->onShapeChange(shapes16, 1, shapes16 + 1, 1) == 0, "talking heads: onShapeChange fp16");
    expect(rt->enqueue(shapes16, shapes16 + 1, ins16, outs16, nullptr, nullptr) == 0, "talking heads: enqueue fp16");
    p.headSize = d16;
    cait::TalkingHeadsDevice const h200{227 * 1024, 132, 90};
    cait::TalkingHeadsPlan const plan = cait::talkingHeadsPlan(B, H, N, d16, true, true, h200);
    expect(plan.variant == cait::TalkingHeadsVariant::kTensorCoreOnePass, "talking heads: fp16 plan is tensor core");
    expect(cait::launchTalkingHeads<__half>(p, qkv16.data(), tc16.data(), h200, nullptr, plan.variant, plan.rows)
            == cudaSuccess,
        "talking heads: direct tensor-core launch");
    expect(cait::launchTalkingHeads<__half>(
               p, qkv16.data(), core16.data(), h200, nullptr, cait::TalkingHeadsVariant::kFullRow)
            == cudaSuccess,
        "talking heads: direct CUDA-core launch");
    auto same = [](std::vector<__half> const& a, std::vector<__half> const& b) {
        return std::memcmp(a.data(), b.data(), a.size() * sizeof(__half)) == 0;
    };
    expect(same(plugin16, tc16) && !same(plugin16, core16), "talking heads: fp16 enqueue runs the tensor-core kernel");

    // Batch 1 with many keys: the plugin asks for a workspace and enqueue splits the keys over
    // blocks (bit for bit the direct launch of that plan).
    int32_t const N1 = 576;
    std::vector<__half> qkv1(static_cast<size_t>(N1) * 3 * C16);
    for (size_t i = 0; i < qkv1.size(); ++i)
    {
        qkv1[i] = __float2half_rn(std::cos(0.11F * static_cast<float>(i)) * 1.5F);
    }
    DynamicPluginTensorDesc profile[2]{};
    profile[0].desc = desc({1, N1, 3 * C16}, DataType::kHALF);
    profile[0].max = Dims{3, {1, N1, 3 * C16}};
    profile[1].desc = desc({1, N1, C16}, DataType::kHALF);
    size_t const wsBytes = build->getWorkspaceSize(profile, 1, profile + 1, 1);
    expect(wsBytes > 0, "talking heads: a workspace for batch-1 key splits");
    std::vector<float> ws((wsBytes + 3) / 4, std::nanf(""));
    std::vector<__half> split1(static_cast<size_t>(N1) * C16), direct1(split1.size());
    PluginTensorDesc shapes1[2] = {desc({1, N1, 3 * C16}, DataType::kHALF), desc({1, N1, C16}, DataType::kHALF)};
    void const* ins1[1] = {qkv1.data()};
    void* outs1[1] = {split1.data()};
    expect(rt->onShapeChange(shapes1, 1, shapes1 + 1, 1) == 0
            && rt->enqueue(shapes1, shapes1 + 1, ins1, outs1, ws.data(), nullptr) == 0,
        "talking heads: enqueue batch 1 with a workspace");
    p.batch = 1;
    p.tokens = N1;
    cait::TalkingHeadsPlan const split = cait::talkingHeadsPlan(1, H, N1, d16, true, true, h200,
        cait::TalkingHeadsVariant::kAuto, 0, cait::talkingHeadsWorkspaceBytes(1, H, N1, d16, h200));
    expect(split.variant == cait::TalkingHeadsVariant::kTensorCoreSplit && split.workspaceBytes <= wsBytes,
        "talking heads: batch 1 plans key splits within the workspace");
    std::vector<float> ws2(ws.size(), std::nanf(""));
    expect(cait::launchTalkingHeads<__half>(p, qkv1.data(), direct1.data(), h200, nullptr, split.variant, split.rows,
               ws2.data(), wsBytes, split.splits)
            == cudaSuccess,
        "talking heads: direct key-split launch");
    expect(same(split1, direct1), "talking heads: batch-1 enqueue splits the keys");
}

void testClassAttention()
{
    cait::ClassAttentionPluginCreator creator;
    expect(std::string(creator.getPluginName()) == "CaitClassAttention" && creator.getFieldNames()->nbFields == 2,
        "class attention: name and 2 fields");
    int32_t heads = 4;
    float scale = 0.125F;
    Fields f;
    f.fields.emplace_back("num_heads", &heads, PluginFieldType::kINT32, 1);
    f.fields.emplace_back("scale", &scale, PluginFieldType::kFLOAT32, 1);
    auto plugin = own(creator.createPlugin("ca", f.get(), TensorRTPhase::kBUILD));
    expect(plugin != nullptr, "class attention: valid attributes create a plugin");
    if (!plugin)
    {
        return;
    }
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto restored = own(creator.createPlugin("ca", runtime->getFieldsToSerialize(), TensorRTPhase::kRUNTIME));
    expect(restored != nullptr
            && sameFields(runtime->getFieldsToSerialize(),
                static_cast<IPluginV3OneRuntime*>(restored->getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                    ->getFieldsToSerialize()),
        "class attention: serialization round-trips");
    {
        Fields g = f;
        g.drop("scale");
        expect(creator.createPlugin("ca", g.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("missing attribute 'scale'"),
            "class attention: missing scale rejected");
    }
    {
        Fields g = f;
        g.fields[1].length = 2;
        expect(creator.createPlugin("ca", g.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("'scale' must have 1 values, got 2"),
            "class attention: scale of length 2 rejected");
    }
    {
        int32_t zero = 0;
        Fields g = f;
        g.fields[0].data = &zero;
        expect(creator.createPlugin("ca", g.get(), TensorRTPhase::kBUILD) == nullptr
                && lastErrorContains("num_heads must be in"),
            "class attention: num_heads 0 rejected");
    }
    PluginTensorDesc bad[4] = {desc({2, 1, 30}, DataType::kFLOAT), desc({2, 9, 30}, DataType::kFLOAT),
        desc({2, 9, 30}, DataType::kFLOAT), desc({2, 1, 30}, DataType::kFLOAT)};
    expect(runtime->onShapeChange(bad, 3, bad + 3, 1) != 0 && lastErrorContains("not divisible by num_heads"),
        "class attention: head size not dividing C rejected");
    PluginTensorDesc mism[4] = {desc({2, 1, 32}, DataType::kFLOAT), desc({2, 9, 32}, DataType::kFLOAT),
        desc({2, 8, 32}, DataType::kFLOAT), desc({2, 1, 32}, DataType::kFLOAT)};
    expect(runtime->onShapeChange(mism, 3, mism + 3, 1) != 0 && lastErrorContains("token counts differ"),
        "class attention: k/v token mismatch rejected");

    int32_t const B = 2, T = 9, C = 32;
    std::vector<__half> q(B * C), k(B * T * C), v(B * T * C), o(B * C), direct(B * C);
    for (size_t i = 0; i < k.size(); ++i)
    {
        k[i] = __float2half_rn(std::cos(0.11F * static_cast<float>(i)));
        v[i] = __float2half_rn(std::sin(0.07F * static_cast<float>(i)));
    }
    for (size_t i = 0; i < q.size(); ++i)
    {
        q[i] = __float2half_rn(std::sin(0.5F * static_cast<float>(i)));
    }
    PluginTensorDesc shapes[4] = {desc({B, 1, C}, DataType::kHALF), desc({B, T, C}, DataType::kHALF),
        desc({B, T, C}, DataType::kHALF), desc({B, 1, C}, DataType::kHALF)};
    void const* ins[3] = {q.data(), k.data(), v.data()};
    void* outs[1] = {o.data()};
    expect(runtime->onShapeChange(shapes, 3, shapes + 3, 1) == 0, "class attention: onShapeChange");
    expect(runtime->enqueue(shapes, shapes + 3, ins, outs, nullptr, nullptr) == 0, "class attention: enqueue fp16");
    cait::ClassAttentionParams p{B, T, heads, C / heads, scale};
    cait::launchClassAttention<__half>(p, q.data(), k.data(), v.data(), direct.data(), 48 * 1024, nullptr);
    expect(std::memcmp(o.data(), direct.data(), o.size() * sizeof(__half)) == 0,
        "class attention: enqueue equals a direct launch");
}

// TensorRT may enqueue a clone that never saw onShapeChange, may run a batch of 0, and shows
// configurePlugin the profile's largest batch: none of these may depend on call order.
Dims dims(std::vector<int64_t> const& v)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(v.size());
    for (size_t i = 0; i < v.size(); ++i)
    {
        d.d[i] = v[i];
    }
    return d;
}

IPluginV3OneRuntime* runtimeOf(IPluginV3* p)
{
    return static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
}

IPluginV3OneBuild* buildOf(IPluginV3* p)
{
    return static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
}

void testTalkingHeadsLifecycle()
{
    cait::TalkingHeadsAttentionPluginCreator creator;
    ThAttrs attrs(4);
    Fields good = attrs.fields();
    auto plugin = own(creator.createPlugin("th", good.get(), TensorRTPhase::kRUNTIME));
    if (!plugin)
    {
        expect(false, "talking heads lifecycle: plugin created");
        return;
    }
    int32_t const B = 2, N = 7, C = 32;
    std::vector<float> qkv(static_cast<size_t>(B) * N * 3 * C);
    for (size_t i = 0; i < qkv.size(); ++i)
    {
        qkv[i] = std::cos(0.23F * static_cast<float>(i));
    }
    std::vector<float> first(static_cast<size_t>(B) * N * C, -1.F), second(first.size(), -2.F);
    PluginTensorDesc shapes[2] = {desc({B, N, 3 * C}, DataType::kFLOAT), desc({B, N, C}, DataType::kFLOAT)};
    void const* ins[1] = {qkv.data()};
    void* outA[1] = {first.data()};
    void* outB[1] = {second.data()};
    auto fresh = own(plugin->clone());
    expect(fresh && runtimeOf(fresh.get())->enqueue(shapes, shapes + 1, ins, outA, nullptr, nullptr) == 0,
        "talking heads: a clone enqueues without onShapeChange");
    expect(runtimeOf(plugin.get())->onShapeChange(shapes, 1, shapes + 1, 1) == 0, "talking heads: onShapeChange");
    auto after = own(plugin->clone());
    expect(after && runtimeOf(after.get())->enqueue(shapes, shapes + 1, ins, outB, nullptr, nullptr) == 0
            && first == second,
        "talking heads: a clone made after onShapeChange enqueues the same result");

    PluginTensorDesc empty[2] = {desc({0, N, 3 * C}, DataType::kFLOAT), desc({0, N, C}, DataType::kFLOAT)};
    float sentinel = 7.F;
    void* outEmpty[1] = {&sentinel};
    expect(runtimeOf(plugin.get())->enqueue(empty, empty + 1, ins, outEmpty, nullptr, nullptr) == 0 && sentinel == 7.F,
        "talking heads: batch 0 is a no-op");

    DynamicPluginTensorDesc in{}, out{};
    in.desc = desc({-1, N, 3 * C}, DataType::kFLOAT);
    in.min = dims({1, N, 3 * C});
    in.max = dims({65536, N, 3 * C});
    out.desc = desc({-1, N, C}, DataType::kFLOAT);
    expect(buildOf(plugin.get())->configurePlugin(&in, 1, &out, 1) != 0 && lastErrorContains("65535"),
        "talking heads: configurePlugin refuses a profile max batch above 65535");
    in.max = dims({65535, N, 3 * C});
    expect(buildOf(plugin.get())->configurePlugin(&in, 1, &out, 1) == 0,
        "talking heads: configurePlugin accepts a profile max batch of 65535");
}

void testClassAttentionLifecycle()
{
    cait::ClassAttentionPluginCreator creator;
    int32_t heads = 4;
    float scale = 0.125F;
    Fields f;
    f.fields.emplace_back("num_heads", &heads, PluginFieldType::kINT32, 1);
    f.fields.emplace_back("scale", &scale, PluginFieldType::kFLOAT32, 1);
    auto plugin = own(creator.createPlugin("ca", f.get(), TensorRTPhase::kRUNTIME));
    if (!plugin)
    {
        expect(false, "class attention lifecycle: plugin created");
        return;
    }
    int32_t const B = 2, T = 5, C = 32;
    std::vector<float> q(B * C, 0.5F), k(B * T * C), v(B * T * C), o(B * C, -1.F);
    for (size_t i = 0; i < k.size(); ++i)
    {
        k[i] = std::sin(0.3F * static_cast<float>(i));
        v[i] = std::cos(0.2F * static_cast<float>(i));
    }
    PluginTensorDesc shapes[4] = {desc({B, 1, C}, DataType::kFLOAT), desc({B, T, C}, DataType::kFLOAT),
        desc({B, T, C}, DataType::kFLOAT), desc({B, 1, C}, DataType::kFLOAT)};
    void const* ins[3] = {q.data(), k.data(), v.data()};
    void* outs[1] = {o.data()};
    auto fresh = own(plugin->clone());
    expect(fresh && runtimeOf(fresh.get())->enqueue(shapes, shapes + 3, ins, outs, nullptr, nullptr) == 0
            && o[0] != -1.F,
        "class attention: a clone enqueues without onShapeChange");

    PluginTensorDesc empty[4] = {desc({0, 1, C}, DataType::kFLOAT), desc({0, T, C}, DataType::kFLOAT),
        desc({0, T, C}, DataType::kFLOAT), desc({0, 1, C}, DataType::kFLOAT)};
    float sentinel = 7.F;
    void* outEmpty[1] = {&sentinel};
    expect(runtimeOf(plugin.get())->enqueue(empty, empty + 3, ins, outEmpty, nullptr, nullptr) == 0 && sentinel == 7.F,
        "class attention: batch 0 is a no-op");

    DynamicPluginTensorDesc in[3]{}, out{};
    in[0].desc = desc({-1, 1, C}, DataType::kFLOAT);
    in[0].max = dims({70000, 1, C});
    for (int i = 1; i < 3; ++i)
    {
        in[i].desc = desc({-1, T, C}, DataType::kFLOAT);
        in[i].max = dims({70000, T, C});
    }
    out.desc = desc({-1, 1, C}, DataType::kFLOAT);
    expect(buildOf(plugin.get())->configurePlugin(in, 3, &out, 1) != 0 && lastErrorContains("65535"),
        "class attention: configurePlugin refuses a profile max batch above 65535");
}

} // namespace

// ---- stubs of what the glue takes from libnvinfer and libcudart ----------------------------------
extern "C" ILogger* getLogger() noexcept
{
    return &gLogger;
}
extern "C" IPluginRegistry* getPluginRegistry() noexcept
{
    return nullptr; // reportError then goes to the logger only
}
extern "C" cudaError_t cudaGetDevice(int* device)
{
    *device = 0;
    return cudaSuccess;
}
extern "C" cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int)
{
    switch (attr) // an H200
    {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 227 * 1024; break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    default: return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
extern "C" char const* cudaGetErrorString(cudaError_t)
{
    return "emulated cuda error";
}

int main()
{
    testTalkingHeads();
    testClassAttention();
    testTalkingHeadsLifecycle();
    testClassAttentionLifecycle();
    std::printf("%s (%d failures)\n", gFailures == 0 ? "ALL PASSED" : "FAILED", gFailures);
    return gFailures == 0 ? 0 : 1;
}
