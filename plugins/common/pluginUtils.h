// Helpers shared by the cait IPluginV3 plugins: one error path, attribute parsing with validation,
// and the serialized field list.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace cait
{

// Thrown inside the plugins and caught at every noexcept boundary by CAIT_CATCH_ALL.
class PluginError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

// TensorRT's error path: the plugin registry's error recorder when one is set (the application
// sees the error code), and the TensorRT logger in any case.
void reportError(std::string const& message, nvinfer1::ErrorCode code = nvinfer1::ErrorCode::kINVALID_ARGUMENT) noexcept;

inline void check(bool condition, std::string const& message)
{
    if (!condition)
    {
        throw PluginError(message);
    }
}

// The kernels put the batch on gridDim.y, which CUDA caps at 65535.
constexpr int64_t kMaxBatch = 65535;

// Refuses an optimization profile whose largest batch the kernels cannot launch, at build time
// (configurePlugin sees the profile's max) rather than at the first enqueue of such a batch.
void checkMaxBatch(int64_t maxBatch);

// Reads the attributes of one createPlugin call. Ints arrive as int32 and floats as float32 from
// TensorRT's ONNX parser; int64/float64 are accepted too, for hand-built networks.
class FieldReader
{
public:
    FieldReader(nvinfer1::PluginFieldCollection const* fc, char const* pluginName);

    int32_t getInt(char const* name) const;
    float getFloat(char const* name) const;
    // `expectedLength` < 0: any length >= 1.
    std::vector<float> getFloats(char const* name, int64_t expectedLength) const;

private:
    nvinfer1::PluginField const& find(char const* name) const;

    nvinfer1::PluginFieldCollection const* mFc;
    std::string mPlugin;
};

// Owns the PluginField array handed out by getFieldsToSerialize and getFieldNames.
class FieldList
{
public:
    void clear();
    void add(char const* name, void const* data, nvinfer1::PluginFieldType type, int32_t length);
    nvinfer1::PluginFieldCollection const* collection() noexcept;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

// What the kernel planners need to know about the current device.
struct DeviceLimits
{
    size_t maxSmemPerBlock; // largest dynamic shared memory per block, with the opt-in attribute
    int32_t smCount;
    int32_t smVersion;      // major * 10 + minor
};
DeviceLimits currentDeviceLimits();

// Largest dynamic shared memory per block the current device grants with the opt-in attribute.
size_t deviceMaxSharedMemoryPerBlock();

bool isFloatOrHalf(nvinfer1::DataType t) noexcept;

} // namespace cait

// Every noexcept method body ends with this: nothing escapes, the message reaches TensorRT.
#define CAIT_CATCH_ALL(pluginName, retval)                                                                           \
    catch (std::exception const& e)                                                                                    \
    {                                                                                                                  \
        cait::reportError(std::string(pluginName) + ": " + __func__ + ": " + e.what());                               \
    }                                                                                                                  \
    catch (...)                                                                                                        \
    {                                                                                                                  \
        cait::reportError(std::string(pluginName) + ": " + __func__ + ": unknown exception",                          \
            nvinfer1::ErrorCode::kINTERNAL_ERROR);                                                                     \
    }                                                                                                                  \
    return retval
