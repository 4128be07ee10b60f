//===- LayerTable.cpp - Find the quantizable ops of a module --------------===//
//
// Lists the ops whose precision quantune decides: linalg convolutions (plain,
// grouped, depthwise) and matmuls on float operands, as IREE's input phase
// produces them from ONNX (Conv → tensor.pad + conv with the bias as init,
// Gemm → linalg.transpose + linalg.matmul + a bias generic). Each layer is
// keyed by walk order and named after the ONNX node in its location. The
// activation input is taken before the node's own pad/reshape and the output
// after the node's own epilogue, so taps match the ONNX tensors.
//
//===----------------------------------------------------------------------===//

#include "quantune/LayerTable.h"
#include "quantune/CAPIHelpers.h"

#include <initializer_list>
#include <string_view>
#include <utility>

using namespace quantune;

namespace {

struct KindEntry {
  std::string_view op;
  LayerKind kind;
  // Output-channel dims in the weight operand and in the result, paired.
  std::initializer_list<int64_t> weightChannels, outputChannels;
};

// Named linalg ops quantune can quantize, with the layer kind each becomes
// and where its output channels are.
const KindEntry kKinds[] = {
    {"linalg.conv_1d_ncw_fcw", LayerKind::Conv, {0}, {1}},
    {"linalg.conv_1d_nwc_wcf", LayerKind::Conv, {2}, {2}},
    {"linalg.conv_2d_nchw_fchw", LayerKind::Conv, {0}, {1}},
    {"linalg.conv_2d_nhwc_hwcf", LayerKind::Conv, {3}, {3}},
    {"linalg.conv_2d_nhwc_fhwc", LayerKind::Conv, {0}, {3}},
    {"linalg.conv_3d_ncdhw_fcdhw", LayerKind::Conv, {0}, {1}},
    {"linalg.conv_3d_ndhwc_dhwcf", LayerKind::Conv, {4}, {4}},
    {"linalg.conv_2d_ngchw_fgchw", LayerKind::GroupedConv, {1, 0}, {1, 2}},
    {"linalg.conv_2d_ngchw_gfchw", LayerKind::GroupedConv, {0, 1}, {1, 2}},
    {"linalg.conv_2d_nhwgc_gfhwc", LayerKind::GroupedConv, {0, 1}, {3, 4}},
    {"linalg.depthwise_conv_1d_ncw_cw", LayerKind::DepthwiseConv, {0}, {1}},
    {"linalg.depthwise_conv_1d_nwc_wc", LayerKind::DepthwiseConv, {1}, {2}},
    {"linalg.depthwise_conv_2d_nchw_chw", LayerKind::DepthwiseConv, {0}, {1}},
    {"linalg.depthwise_conv_2d_nhwc_hwc", LayerKind::DepthwiseConv, {2}, {3}},
    {"linalg.depthwise_conv_3d_ncdhw_cdhw", LayerKind::DepthwiseConv, {0}, {1}},
    {"linalg.depthwise_conv_3d_ndhwc_dhwc", LayerKind::DepthwiseConv, {3}, {4}},
    {"linalg.matmul", LayerKind::Matmul, {1}, {1}},
    {"linalg.batch_matmul", LayerKind::BatchMatmul, {2}, {2}},
};

const KindEntry *kindOf(std::string_view name) {
  for (const KindEntry &e : kKinds)
    if (e.op == name)
      return &e;
  return nullptr;
}

bool hasRole(MlirOperation op, std::string_view role) {
  MlirAttribute a = mlirOperationGetAttributeByName(op, toRef(kRoleAttr));
  return !mlirAttributeIsNull(a) && mlirAttributeIsAString(a) &&
         toView(mlirStringAttrGetValue(a)) == role;
}

bool isShapeOnly(std::string_view name) {
  return name == "tensor.pad" || name == "tensor.expand_shape" ||
         name == "tensor.collapse_shape" || name == "tensor.reshape";
}

/// The im2col form's patches: slices of the quantized input (operand 0 is the
/// source of both) inserted into the patch tensor.
bool isPatchCopy(std::string_view name) {
  return name == "tensor.extract_slice" || name == "tensor.insert_slice";
}

/// The op defining `v` when it belongs to ONNX node `node`, else null.
MlirOperation sameNodeProducer(MlirValue v, const std::string &node) {
  if (!mlirValueIsAOpResult(v))
    return MlirOperation{nullptr};
  MlirOperation def = mlirOpResultGetOwner(v);
  if (nodeName(mlirOperationGetLocation(def)) != node)
    return MlirOperation{nullptr};
  return def;
}

/// The only user of `v`, or null when it has none or several.
MlirOperation soleUser(MlirValue v) {
  MlirOpOperand use = mlirValueGetFirstUse(v);
  if (mlirOpOperandIsNull(use) ||
      !mlirOpOperandIsNull(mlirOpOperandGetNextUse(use)))
    return MlirOperation{nullptr};
  return mlirOpOperandGetOwner(use);
}

/// Walks back from the op's input through the node's own pad/reshapes,
/// recording them (in program order) in `prologue`.
MlirValue activationInput(MlirValue v, const std::string &node,
                          std::vector<MlirOperation> &prologue) {
  for (;;) {
    MlirOperation def = sameNodeProducer(v, node);
    if (mlirOperationIsNull(def))
      return v;
    bool quantize = hasRole(def, kRoleQuantize);
    if (!quantize && !isShapeOnly(opName(def)) && !isPatchCopy(opName(def)) &&
        !hasRole(def, kRoleGather))
      return v;
    prologue.insert(prologue.begin(), def);
    v = mlirOperationGetOperand(def, 0);
    if (!quantize)
      continue;
    // The float activation the layer quantizes, before the node's own
    // relayout (channels-last forms transpose it first).
    MlirOperation relayout = sameNodeProducer(v, node);
    if (!mlirOperationIsNull(relayout) && opName(relayout) == "linalg.transpose") {
      prologue.insert(prologue.begin(), relayout);
      v = mlirOperationGetOperand(relayout, 0);
    }
    return v;
  }
}

/// Walks forward from the op's result through the node's own epilogue (the
/// Gemm bias add, a reshape back, the im2col form's slice of its padded rows)
/// while each value has a single user, recording the ops in `epilogue`.
MlirValue nodeOutput(MlirValue v, const std::string &node,
                     std::vector<MlirOperation> &epilogue) {
  for (;;) {
    MlirOperation user = soleUser(v);
    if (mlirOperationIsNull(user) || mlirOperationGetNumResults(user) != 1 ||
        nodeName(mlirOperationGetLocation(user)) != node)
      return v;
    std::string_view name = opName(user);
    if (name != "linalg.generic" && name != "linalg.transpose" && !isShapeOnly(name) &&
        name != "tensor.extract_slice")
      return v;
    epilogue.push_back(user);
    v = mlirOperationGetResult(user, 0);
  }
}

/// Follows the weight operand back to an arith.constant through transposes
/// and reshapes of the same node, recording the steps.
void resolveWeight(Layer &layer) {
  std::vector<WeightStep> reversed;
  MlirValue v = layer.weight();
  for (;;) {
    if (!mlirValueIsAOpResult(v))
      return;
    MlirOperation def = mlirOpResultGetOwner(v);
    std::string_view name = opName(def);
    if (name == "arith.constant") {
      MlirAttribute value = mlirOperationGetAttributeByName(def, toRef("value"));
      if (mlirAttributeIsNull(value) ||
          !(mlirAttributeIsADenseElements(value) ||
            mlirAttributeIsADenseResourceElements(value)))
        return;
      layer.weightIsConstant = true;
      layer.weightAttr = value;
      layer.weightConstShape = staticShape(v);
      layer.weightSteps.assign(reversed.rbegin(), reversed.rend());
      return;
    }
    if (nodeName(mlirOperationGetLocation(def)) != layer.node)
      return;
    if (name == "linalg.transpose") {
      MlirAttribute perm =
          mlirOperationGetAttributeByName(def, toRef("permutation"));
      WeightStep step{WeightStep::Kind::Transpose, {}};
      for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(perm); i < e; ++i)
        step.value.push_back(mlirDenseI64ArrayGetElement(perm, i));
      reversed.push_back(std::move(step));
    } else if (name == "tensor.expand_shape" || name == "tensor.collapse_shape") {
      reversed.push_back({WeightStep::Kind::Reshape, staticShape(v)});
    } else {
      return;
    }
    v = mlirOperationGetOperand(def, 0);
  }
}

struct WalkState {
  std::vector<Layer> layers;
  std::string error; // set when a layer could not be recorded; the walk stops
};

/// Records `op` when it is a quantizable layer. Throws NativeError when its
/// shapes are not static.
void recordLayer(MlirOperation op, std::vector<Layer> &layers) {
  // An integer op quantune made names the float op it replaced, since it may
  // be written as another op (a channels-last linalg.generic or matmul).
  MlirAttribute replaced = mlirOperationGetAttributeByName(op, toRef(kOpAttr));
  bool isQuantized = !mlirAttributeIsNull(
      mlirOperationGetAttributeByName(op, toRef(kLayerAttr)));
  std::string_view name = isQuantized && !mlirAttributeIsNull(replaced)
                              ? toView(mlirStringAttrGetValue(replaced))
                              : opName(op);
  const KindEntry *kind = kindOf(name);
  if (!kind || mlirOperationGetNumOperands(op) < 3)
    return;
  MlirType inType = mlirValueGetType(mlirOperationGetOperand(op, 0));
  if (!mlirTypeIsARankedTensor(inType))
    return;
  bool isFloat = mlirTypeIsAFloat(mlirShapedTypeGetElementType(inType));
  if (!isFloat && !isQuantized)
    return;

  Layer layer;
  layer.id = static_cast<int64_t>(layers.size());
  layer.op = op;
  layer.kind = kind->kind;
  layer.precision = isFloat ? Precision::FP32 : Precision::Int8;
  layer.weightChannelDims.assign(kind->weightChannels);
  layer.outputChannelDims.assign(kind->outputChannels);
  layer.opName = std::string(name);
  layer.node = nodeName(mlirOperationGetLocation(op));
  layer.input = activationInput(mlirOperationGetOperand(op, 0), layer.node,
                                layer.prologue);
  layer.output = nodeOutput(mlirOperationGetResult(op, 0), layer.node,
                            layer.epilogue);
  layer.inputShape = staticShape(layer.input);
  layer.elementType = printType(
      mlirShapedTypeGetElementType(mlirValueGetType(layer.input)));
  layer.weightShape = staticShape(mlirOperationGetOperand(op, 1));
  layer.outputShape = staticShape(layer.output);
  resolveWeight(layer);
  layers.push_back(std::move(layer));
}

/// The walk callback: C frames sit between it and collectLayers, so it never
/// lets an exception out; it records the error and interrupts the walk.
MlirWalkResult visit(MlirOperation op, void *userData) {
  auto *state = static_cast<WalkState *>(userData);
  try {
    recordLayer(op, state->layers);
  } catch (const NativeError &e) {
    state->error = e.what();
    return MlirWalkResultInterrupt;
  }
  return MlirWalkResultAdvance;
}

} // namespace

MlirValue Layer::weight() const { return mlirOperationGetOperand(op, 1); }

std::vector<Layer> quantune::collectLayers(MlirOperation root) {
  WalkState state;
  mlirOperationWalk(root, visit, &state, MlirWalkPreOrder);
  if (!state.error.empty())
    throw NativeError(state.error);
  return std::move(state.layers);
}
