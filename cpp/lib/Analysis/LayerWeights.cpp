//===- LayerWeights.cpp - A layer's weight and bias as numbers ------------===//
//
// Reads what quantizing a layer needs from its IR: the f32 weight in the op's
// operand layout (through the transposes and reshapes the layer table
// recorded) and the bias, whether a conv's broadcast init or a Gemm's bias
// add in the node's epilogue.
//
//===----------------------------------------------------------------------===//

#include "quantune/LayerWeights.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/IRText.h"

#include <cmath>

namespace quantune {

/// The weight in the op's operand layout, from its f32 constant.
std::vector<float> operandWeight(const Layer &l) {
  MlirAttribute attr = l.weightAttr;
  if (!l.weightIsConstant || !mlirAttributeIsADenseElements(attr) ||
      !mlirTypeIsAF32(mlirShapedTypeGetElementType(mlirAttributeGetType(attr))))
    throw NativeError(layerName(l) + ": the weight is not an f32 dense constant");
  size_t n = mlirElementsAttrGetNumElements(attr);
  const float *raw =
      static_cast<const float *>(mlirDenseElementsAttrGetRawData(attr));
  std::vector<float> data =
      mlirDenseElementsAttrIsSplat(attr) ? std::vector<float>(n, raw[0])
                                         : std::vector<float>(raw, raw + n);
  std::vector<int64_t> shape = l.weightConstShape;
  for (const WeightStep &step : l.weightSteps) {
    if (step.kind == WeightStep::Kind::Reshape) {
      shape = step.value;
      continue;
    }
    // Transpose: out[i] = in[perm applied], via row-major strides.
    size_t rank = shape.size();
    std::vector<int64_t> inStrides(rank, 1), outShape(rank);
    for (size_t d = rank - 1; d > 0; --d)
      inStrides[d - 1] = inStrides[d] * shape[d];
    for (size_t d = 0; d < rank; ++d)
      outShape[d] = shape[step.value[d]];
    std::vector<float> out(n);
    std::vector<int64_t> idx(rank, 0);
    for (size_t i = 0; i < n; ++i) {
      int64_t src = 0;
      for (size_t d = 0; d < rank; ++d)
        src += idx[d] * inStrides[step.value[d]];
      out[i] = data[src];
      for (size_t d = rank; d-- > 0;) {
        if (++idx[d] < outShape[d])
          break;
        idx[d] = 0;
      }
    }
    data.swap(out);
    shape = outShape;
  }
  return data;
}

/// Per-element output-channel index of a row-major tensor of `shape`, with
/// channels along `dims` (row-major over those dims).
std::vector<int64_t> channelIndex(const std::vector<int64_t> &shape,
                                  const std::vector<int64_t> &dims) {
  size_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<int64_t> out(n), idx(shape.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t c = 0;
    for (int64_t d : dims)
      c = c * shape[d] + idx[d];
    out[i] = c;
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
  return out;
}

/// The f32 values of a 1-D dense constant of `n` elements defining `v`.
std::vector<float> constantVector(MlirValue v, int64_t n) {
  if (!mlirValueIsAOpResult(v))
    return {};
  MlirOperation def = mlirOpResultGetOwner(v);
  MlirAttribute a = mlirOperationGetAttributeByName(def, toRef("value"));
  if (opName(def) != "arith.constant" || mlirAttributeIsNull(a) ||
      !mlirAttributeIsADenseElements(a))
    return {};
  MlirType t = mlirAttributeGetType(a);
  if (mlirShapedTypeGetRank(t) != 1 || mlirShapedTypeGetDimSize(t, 0) != n ||
      !mlirTypeIsAF32(mlirShapedTypeGetElementType(t)))
    return {};
  const float *raw = static_cast<const float *>(mlirDenseElementsAttrGetRawData(a));
  return mlirDenseElementsAttrIsSplat(a) ? std::vector<float>(n, raw[0])
                                         : std::vector<float>(raw, raw + n);
}

bool isZeroFill(MlirValue v) {
  if (!mlirValueIsAOpResult(v))
    return false;
  MlirOperation def = mlirOpResultGetOwner(v);
  if (opName(def) != "linalg.fill")
    return false;
  MlirValue fill = mlirOperationGetOperand(def, 0);
  if (!mlirValueIsAOpResult(fill))
    return false;
  MlirAttribute a =
      mlirOperationGetAttributeByName(mlirOpResultGetOwner(fill), toRef("value"));
  return !mlirAttributeIsNull(a) && mlirAttributeIsAFloat(a) &&
         mlirFloatAttrGetValueDouble(a) == 0.0 && !std::signbit(mlirFloatAttrGetValueDouble(a));
}

/// The per-channel bias when `init` broadcasts a constant along the output
/// channels (a conv bias; through the expand_shape of a grouped conv).
std::vector<float> broadcastBias(const Layer &l, MlirValue init, int64_t channels) {
  if (!mlirValueIsAOpResult(init))
    return {};
  MlirOperation def = mlirOpResultGetOwner(init);
  bool expanded = opName(def) == "tensor.expand_shape";
  if (expanded) {
    MlirValue src = mlirOperationGetOperand(def, 0);
    if (!mlirValueIsAOpResult(src))
      return {};
    def = mlirOpResultGetOwner(src);
  }
  if (opName(def) != "linalg.broadcast")
    return {};
  // The one dim not broadcast must be where the channels (start to) live.
  MlirAttribute dims = mlirOperationGetAttributeByName(def, toRef("dimensions"));
  int64_t rank = mlirShapedTypeGetRank(mlirValueGetType(mlirOperationGetResult(def, 0)));
  std::vector<bool> added(rank, false);
  for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(dims); i < e; ++i)
    added[mlirDenseI64ArrayGetElement(dims, i)] = true;
  std::vector<int64_t> kept;
  for (int64_t d = 0; d < rank; ++d)
    if (!added[d])
      kept.push_back(d);
  bool channelsKept = kept.size() == 1 && kept[0] == l.outputChannelDims[0] &&
                      (expanded || l.outputChannelDims.size() == 1);
  if (!channelsKept)
    return {};
  return constantVector(mlirOperationGetOperand(def, 0), channels);
}

/// The node's own bias add after a matmul (Gemm: a generic adding a
/// per-column constant), or null.
MlirOperation epilogueBiasAdd(const Layer &l, int64_t channels, std::vector<float> &bias) {
  if (l.epilogue.empty() || l.outputChannelDims.size() != 1)
    return MlirOperation{nullptr};
  MlirOperation g = l.epilogue.front();
  if (opName(g) != "linalg.generic" || mlirOperationGetNumOperands(g) != 3 ||
      !mlirValueEqual(mlirOperationGetOperand(g, 0), mlirOperationGetResult(l.op, 0)))
    return MlirOperation{nullptr};
  size_t rank = l.outputShape.size();
  std::string maps = printAttr(mlirOperationGetAttributeByName(g, toRef("indexing_maps")));
  std::string want = "[" + identityMap(rank) + ", " +
                     affineMap(rank, {l.outputChannelDims[0]}) + ", " + identityMap(rank) + "]";
  if (maps != want)
    return MlirOperation{nullptr};
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(g, 0));
  MlirOperation add = mlirBlockGetFirstOperation(body);
  if (opName(add) != "arith.addf" ||
      opName(mlirOperationGetNextInBlock(add)) != "linalg.yield")
    return MlirOperation{nullptr};
  bias = constantVector(mlirOperationGetOperand(g, 1), channels);
  return bias.empty() ? MlirOperation{nullptr} : g;
}

} // namespace quantune
