//===- LayerTable.h - The quantizable ops of a module ---------------------===//
//
// The analysis every quantune pass starts from: each linalg conv, depthwise
// or grouped conv and matmul on float operands (or rewritten to integers by
// quantune-quantize-layers), with its ONNX node name, shapes, weight constant
// and the node's own ops around it. Plain C API handles in, records out, so
// C/C++ toolchains can call it without Python.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_LAYERTABLE_H
#define QUANTUNE_LAYERTABLE_H

#include "mlir-c/IR.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantune {

enum class LayerKind { Conv, DepthwiseConv, GroupedConv, Matmul, BatchMatmul };
enum class Precision { FP32, Int8 };

/// One step from a weight constant to the op's weight operand.
struct WeightStep {
  enum class Kind { Transpose, Reshape };
  Kind kind;
  std::vector<int64_t> value; // the permutation, or the new shape
};

/// A quantizable op at linalg level: conv, depthwise/grouped conv, matmul.
struct Layer {
  int64_t id = 0;          // position among quantizable ops, in walk order
  std::string node;        // ONNX node name, from the op's location
  LayerKind kind = LayerKind::Conv;
  std::string opName;      // e.g. linalg.conv_2d_nchw_fchw
  std::string elementType; // element type of the activation input, e.g. f32
  Precision precision = Precision::FP32; // Int8: rewritten by quantune
  // Output channels: their dims in the weight operand and in the op result,
  // listed in the same order (two dims for grouped convs: group, filter).
  std::vector<int64_t> weightChannelDims, outputChannelDims;
  MlirOperation op{nullptr};
  MlirValue input{nullptr};  // activation as the node receives it (before its pad)
  MlirValue output{nullptr}; // the node's result (after its own bias/reshape)
  MlirValue weight() const;  // the op's weight operand (operand 1)
  // The node's own ops around `op`, in program order: input → prologue → op
  // → epilogue → output (pads/reshapes before, bias/reshape after).
  std::vector<MlirOperation> prologue, epilogue;
  std::vector<int64_t> inputShape, weightShape, outputShape;
  // The weight, when it is a constant reached through transposes/reshapes.
  bool weightIsConstant = false;
  MlirAttribute weightAttr{nullptr}; // dense elements or dense resource
  std::vector<int64_t> weightConstShape;
  std::vector<WeightStep> weightSteps; // applied in order: constant → operand
};

/// "layer 3 ('/features/Conv')", for messages.
inline std::string layerName(const Layer &l) {
  return "layer " + std::to_string(l.id) + " ('" + l.node + "')";
}

/// Lists every quantizable op under `root`, in walk (program) order: float
/// ops, and integer ops that quantune-quantize-layers produced from them
/// (which keep their position, so a layer keeps its id). Throws NativeError
/// when an op's shapes are not static.
std::vector<Layer> collectLayers(MlirOperation root);

/// Discardable attributes quantune-quantize-layers leaves on its ops.
constexpr const char *kLayerAttr = "quantune.layer";     // on the integer op
constexpr const char *kOpAttr = "quantune.op";           // the float op it replaced
constexpr const char *kRoleAttr = "quantune.role";       // on its generics
constexpr const char *kRoleQuantize = "quantize";
constexpr const char *kRoleDequantize = "dequantize";
constexpr const char *kRoleGather = "gather"; // im2col patches, between quantize and the op

} // namespace quantune

#endif // QUANTUNE_LAYERTABLE_H
