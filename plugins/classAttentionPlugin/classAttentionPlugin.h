// IPluginV3 for CaitClassAttention (contract: pipeline/contract/specs.py and the README).
// One source for TensorRT 10.3 .. 11.x.
#pragma once

#include "classAttentionPlugin/classAttentionKernel.h"
#include "common/pluginUtils.h"

#include <NvInferRuntime.h>

namespace cait
{

constexpr char const* kCLASS_ATTENTION_PLUGIN_NAME{"CaitClassAttention"};
constexpr char const* kCLASS_ATTENTION_PLUGIN_VERSION{"1"};
constexpr char const* kCLASS_ATTENTION_PLUGIN_NAMESPACE{""};

struct ClassAttentionAttributes
{
    int32_t numHeads{0};
    float scale{1.F};
};

class ClassAttentionPlugin : public nvinfer1::IPluginV3,
                             public nvinfer1::IPluginV3OneCore,
                             public nvinfer1::IPluginV3OneBuild,
                             public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit ClassAttentionPlugin(ClassAttentionAttributes attrs);
    ~ClassAttentionPlugin() override = default;

    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t headSizeOf(int64_t channels) const;
    void checkFits(int64_t tokens, int32_t headSize);

    ClassAttentionAttributes mAttrs;
    size_t mMaxSmem{0};           // device opt-in limit, queried on first use
    bool mPrepared{false};        // kernel opted in to mMaxSmem (copied by clone)
    FieldList mSerialized;
};

class ClassAttentionPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    ClassAttentionPluginCreator();
    ~ClassAttentionPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

ClassAttentionAttributes parseClassAttentionAttributes(nvinfer1::PluginFieldCollection const* fc);

} // namespace cait
