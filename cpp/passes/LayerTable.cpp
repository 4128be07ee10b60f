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

#include "Passes.h"
#include "capi_helpers.h"

#include <initializer_list>
#include <string_view>
#include <utility>

using namespace quantune;

namespace {

struct KindEntry {
  std::string_view op;
  std::string_view kind;
  // Output-channel dims in the weight operand and in the result, paired.
  std::initializer_list<int64_t> weightChannels, outputChannels;
};

// Named linalg ops quantune can quantize, with the layer kind each becomes
// and where its output channels are.
const KindEntry kKinds[] = {
    {"linalg.conv_1d_ncw_fcw", "conv", {0}, {1}},
    {"linalg.conv_1d_nwc_wcf", "conv", {2}, {2}},
    {"linalg.conv_2d_nchw_fchw", "conv", {0}, {1}},
    {"linalg.conv_2d_nhwc_hwcf", "conv", {3}, {3}},
    {"linalg.conv_2d_nhwc_fhwc", "conv", {0}, {3}},
    {"linalg.conv_3d_ncdhw_fcdhw", "conv", {0}, {1}},
    {"linalg.conv_3d_ndhwc_dhwcf", "conv", {4}, {4}},
    {"linalg.conv_2d_ngchw_fgchw", "grouped_conv", {1, 0}, {1, 2}},
    {"linalg.conv_2d_ngchw_gfchw", "grouped_conv", {0, 1}, {1, 2}},
    {"linalg.conv_2d_nhwgc_gfhwc", "grouped_conv", {0, 1}, {3, 4}},
    {"linalg.depthwise_conv_1d_ncw_cw", "depthwise_conv", {0}, {1}},
    {"linalg.depthwise_conv_1d_nwc_wc", "depthwise_conv", {1}, {2}},
    {"linalg.depthwise_conv_2d_nchw_chw", "depthwise_conv", {0}, {1}},
    {"linalg.depthwise_conv_2d_nhwc_hwc", "depthwise_conv", {2}, {3}},
    {"linalg.depthwise_conv_3d_ncdhw_cdhw", "depthwise_conv", {0}, {1}},
    {"linalg.depthwise_conv_3d_ndhwc_dhwc", "depthwise_conv", {3}, {4}},
    {"linalg.matmul", "matmul", {1}, {1}},
    {"linalg.batch_matmul", "batch_matmul", {2}, {2}},
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
    if (!quantize && !isShapeOnly(opName(def)))
      return v;
    prologue.insert(prologue.begin(), def);
    v = mlirOperationGetOperand(def, 0);
    if (quantize) // the float activation the layer quantizes
      return v;
  }
}

/// Walks forward from the op's result through the node's own epilogue (the
/// Gemm bias add, a reshape back) while each value has a single user,
/// recording the ops in `epilogue`.
MlirValue nodeOutput(MlirValue v, const std::string &node,
                     std::vector<MlirOperation> &epilogue) {
  for (;;) {
    MlirOperation user = soleUser(v);
    if (mlirOperationIsNull(user) || mlirOperationGetNumResults(user) != 1 ||
        nodeName(mlirOperationGetLocation(user)) != node)
      return v;
    std::string_view name = opName(user);
    if (name != "linalg.generic" && !isShapeOnly(name))
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
      WeightStep step{"transpose", {}};
      for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(perm); i < e; ++i)
        step.value.push_back(mlirDenseI64ArrayGetElement(perm, i));
      reversed.push_back(std::move(step));
    } else if (name == "tensor.expand_shape" || name == "tensor.collapse_shape") {
      reversed.push_back({"reshape", staticShape(v)});
    } else {
      return;
    }
    v = mlirOperationGetOperand(def, 0);
  }
}

struct WalkState {
  std::vector<Layer> layers;
};

MlirWalkResult visit(MlirOperation op, void *userData) {
  auto *state = static_cast<WalkState *>(userData);
  const KindEntry *kind = kindOf(opName(op));
  if (!kind || mlirOperationGetNumOperands(op) < 3)
    return MlirWalkResultAdvance;
  MlirType inType = mlirValueGetType(mlirOperationGetOperand(op, 0));
  if (!mlirTypeIsARankedTensor(inType))
    return MlirWalkResultAdvance;
  bool isFloat = mlirTypeIsAFloat(mlirShapedTypeGetElementType(inType));
  bool isQuantized = !mlirAttributeIsNull(
      mlirOperationGetAttributeByName(op, toRef(kLayerAttr)));
  if (!isFloat && !isQuantized)
    return MlirWalkResultAdvance;

  Layer layer;
  layer.id = static_cast<int64_t>(state->layers.size());
  layer.op = op;
  layer.kind = std::string(kind->kind);
  layer.precision = isFloat ? "fp32" : "int8";
  layer.weightChannelDims.assign(kind->weightChannels);
  layer.outputChannelDims.assign(kind->outputChannels);
  layer.opName = std::string(opName(op));
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
  state->layers.push_back(std::move(layer));
  return MlirWalkResultAdvance;
}

} // namespace

MlirValue Layer::weight() const { return mlirOperationGetOperand(op, 1); }

std::vector<Layer> quantune::collectLayers(MlirOperation root) {
  WalkState state;
  mlirOperationWalk(root, visit, &state, MlirWalkPreOrder);
  return std::move(state.layers);
}
