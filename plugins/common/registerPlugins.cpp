// The library's only registration point: loading libcait_trt_plugins.so (ctypes.CDLL, Polygraphy
// LoadPlugins, trtexec --staticPlugins) registers both creators under the empty namespace.
#include "classAttentionPlugin/classAttentionPlugin.h"
#include "talkingHeadsAttentionPlugin/talkingHeadsAttentionPlugin.h"

#include <NvInferRuntime.h>

using cait::ClassAttentionPluginCreator;
using cait::TalkingHeadsAttentionPluginCreator;

REGISTER_TENSORRT_PLUGIN(TalkingHeadsAttentionPluginCreator);
REGISTER_TENSORRT_PLUGIN(ClassAttentionPluginCreator);
