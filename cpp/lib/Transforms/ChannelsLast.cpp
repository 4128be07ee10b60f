//===- ChannelsLast.cpp - quantune-channels-last --------------------------===//
//
// Rewrites every float 2-D NCHW conv and depthwise conv with a constant
// weight channels-last: transpose the input, pad it, contract on NHWC with
// the weight transposed at compile time, transpose the result back. IREE
// cancels the transposes between consecutive layers. Why not IREE's own
// channels-last preprocessing: it skips depthwise convs, which IREE 3.13 runs
// as scalar loops in NCHW (its im2col pass turns the named NHWC depthwise op
// into scalar copies, so they become a linalg.generic here), and it leaves
// the filter as a transpose that folds into the 1x1 convs' matmuls as a
// transposed operand, with in-loop shuffles. Convs become the named NHWC conv
// (1x1 ones too: on x86 that beats a matmul over pixels, which with
// inner-tiled data tiling does not even compile; on Cortex-A53 IREE's im2col
// makes it the same matmul). Runs last (after quantize-layers and taps): the
// layer table does not list the depthwise generics it made.
//
//===----------------------------------------------------------------------===//

#include "quantune/ChannelsLast.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/IRText.h"
#include "quantune/IntegerRewrite.h"
#include "quantune/LayerTable.h"
#include "quantune/LayerWeights.h"
#include "quantune/Splice.h"

#include <sstream>

using namespace quantune;

namespace {

std::vector<int64_t> permute(const std::vector<int64_t> &v, const std::vector<int64_t> &p) {
  std::vector<int64_t> out;
  for (int64_t i : p)
    out.push_back(v[i]);
  return out;
}

/// The contraction on `in` (NHWC, padded) into `%r` (NHWC) from `%it`.
void contractionText(const Layer &l, const ConvGeometry &g, const std::string &in,
                     const std::vector<int64_t> &inShape, const std::vector<int64_t> &wShape,
                     const std::vector<int64_t> &o, std::ostringstream &t) {
  std::string tIn = tensorType(inShape, "f32"), tW = tensorType(wShape, "f32");
  std::string tO = tensorType(o, "f32");
  if (g.depthwise) {
    t << "  %r = linalg.generic {indexing_maps = [" << channelsLastMaps(g) << "} ins(" << in
      << ", %w : " << tIn << ", " << tW << ") outs(%it : " << tO << ") {\n"
      << "  ^bb0(%a: f32, %b: f32, %c: f32):\n"
      << "    %m = arith.mulf %a, %b : f32\n"
      << "    %s = arith.addf %c, %m : f32\n"
      << "    linalg.yield %s : f32\n"
      << "  } -> " << tO << "\n";
  } else {
    t << "  %r = linalg.conv_2d_nhwc_hwcf {dilations = dense<[" << g.dilations[0] << ", "
      << g.dilations[1] << "]> : vector<2xi64>, strides = dense<[" << g.strides[0] << ", "
      << g.strides[1] << "]> : vector<2xi64>} ins(" << in << ", %w : " << tIn << ", " << tW
      << ") outs(%it : " << tO << ") -> " << tO << "\n";
  }
}

/// The rewrite: (x, w in the NHWC form's layout, init) -> the conv's result.
std::string rewriteText(const Layer &l, const ConvGeometry &g, const std::vector<int64_t> &wShape) {
  const std::vector<int64_t> toNhwc = {0, 2, 3, 1};
  std::vector<int64_t> out = staticShape(mlirOperationGetResult(l.op, 0));
  std::vector<int64_t> x = permute(l.inputShape, toNhwc), o = permute(out, toNhwc);
  std::vector<int64_t> low = permute(g.low, toNhwc), high = permute(g.high, toNhwc);
  std::vector<int64_t> padded = x;
  for (size_t i = 0; i < 4; ++i)
    padded[i] += low[i] + high[i];
  std::string tX = tensorType(l.inputShape, "f32"), tXt = tensorType(x, "f32");
  std::string tW = tensorType(wShape, "f32");
  std::string tOut = tensorType(out, "f32"), tO = tensorType(o, "f32");
  std::ostringstream t;
  t << "func.func @quantune_channels_last(%x: " << tX << ", %w: " << tW << ", %init: " << tOut
    << ") -> " << tOut << " {\n"
    << "  %xe = tensor.empty() : " << tXt << "\n"
    << "  %xt = linalg.transpose ins(%x : " << tX << ") outs(%xe : " << tXt
    << ") permutation = [0, 2, 3, 1]\n";
  std::string in = "%xt";
  if (padded != x) {
    t << "  %cz = arith.constant 0.0 : f32\n"
      << padText("%xt", "%xp", low, high, tXt, tensorType(padded, "f32"), "%cz", "f32");
    in = "%xp";
  }
  t << "  %ie = tensor.empty() : " << tO << "\n"
    << "  %it = linalg.transpose ins(%init : " << tOut << ") outs(%ie : " << tO
    << ") permutation = [0, 2, 3, 1]\n";
  contractionText(l, g, in, padded, wShape, o, t);
  t << "  %oe = tensor.empty() : " << tOut << "\n"
    << "  %out = linalg.transpose ins(%r : " << tO << ") outs(%oe : " << tOut
    << ") permutation = [0, 3, 1, 2]\n"
    << "  return %out : " << tOut << "\n}\n";
  return t.str();
}

bool isRewritable(const Layer &l) {
  return l.precision == Precision::FP32 &&
         (l.opName == "linalg.depthwise_conv_2d_nchw_chw" ||
          l.opName == "linalg.conv_2d_nchw_fchw") &&
         l.elementType == "f32" && l.weightIsConstant &&
         mlirAttributeIsADenseElements(l.weightAttr) &&
         (l.prologue.empty() ||
          (l.prologue.size() == 1 && opName(l.prologue[0]) == "tensor.pad"));
}

/// The weight in the layout the channels-last op reads: CHW -> HWC,
/// FCHW -> HWCF.
std::vector<float> channelsLastWeight(const Layer &l, const ConvGeometry &g,
                                      std::vector<int64_t> &shape) {
  std::vector<float> w = operandWeight(l);
  std::vector<int64_t> perm = g.depthwise ? std::vector<int64_t>{1, 2, 0}
                                          : std::vector<int64_t>{2, 3, 1, 0};
  const std::vector<int64_t> &in = l.weightShape;
  size_t rank = in.size();
  std::vector<int64_t> strides(rank, 1), idx(rank, 0);
  for (size_t d = rank - 1; d > 0; --d)
    strides[d - 1] = strides[d] * in[d];
  shape = permute(in, perm);
  std::vector<float> out(w.size());
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t src = 0;
    for (size_t d = 0; d < rank; ++d)
      src += idx[d] * strides[perm[d]];
    out[i] = w[src];
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
  return out;
}

void rewriteChannelsLast(MlirOperation module, ChannelsLastOptions &options) {
  std::vector<Layer> layers = collectLayers(module);
  // Last layer first: a rewrite replaces its op's result, which a later
  // layer may still hold as its input.
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    const Layer &l = *it;
    if (!isRewritable(l))
      continue;
    ConvGeometry g = convGeometry(l);
    std::vector<int64_t> shape;
    std::vector<float> w = channelsLastWeight(l, g, shape);
    MlirContext ctx = mlirOperationGetContext(l.op);
    MlirType type = mlirRankedTensorTypeGet(shape.size(), shape.data(), mlirF32TypeGet(ctx),
                                            mlirAttributeGetNull());
    MlirOperation wConst = createConstant(mlirDenseElementsAttrFloatGet(type, w.size(), w.data()),
                                          mlirOperationGetLocation(l.op), l.op);
    std::vector<MlirValue> args = {l.input, mlirOperationGetResult(wConst, 0),
                                   mlirOperationGetOperand(l.op, 2)};
    MlirValue out = spliceFunction(l.op, rewriteText(l, g, shape), args,
                                   [](MlirOperation) {}, layerName(l));
    mlirValueReplaceAllUsesOfWith(mlirOperationGetResult(l.op, 0), out);
    eraseWithDeadProducers(l.op);
    ++options.rewritten;
  }
}

} // namespace

MlirPass quantune::createChannelsLastPass(ChannelsLastOptions *options) {
  return createModulePass<ChannelsLastOptions, rewriteChannelsLast>(
      "ChannelsLast", "quantune-channels-last",
      "Rewrite float NCHW convs and depthwise convs channels-last between transposes", options);
}
