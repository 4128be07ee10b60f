//===- IntegerRewrite.cpp - The MLIR text of one layer's integer form -----===//
//
// Every form computes q = clamp(rne(x / s) + zp) in the stored type, pads
// with the zero point, accumulates q * w in i32 and dequantizes with one
// float rounding, float(acc - corr) * s. The forms differ only in how IREE
// sees them: the stored type (i8, u8 = q + 128, i16), the contraction (the
// named op as imported, or channels-last linalg.generic / matmul between
// transposes) and the quantize arithmetic (divide, or a corrected reciprocal
// that rounds the same).
//
//===----------------------------------------------------------------------===//

#include "quantune/IntegerRewrite.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/IRText.h"

#include <cmath>
#include <sstream>

namespace quantune {
namespace {

using Storage = IntegerForm::Storage;

constexpr const char *kConvNchw = "linalg.conv_2d_nchw_fchw";
constexpr const char *kDepthwiseNchw = "linalg.depthwise_conv_2d_nchw_chw";
const std::vector<int64_t> kToNhwc = {0, 2, 3, 1}, kToNchw = {0, 3, 1, 2};

std::vector<int64_t> permute(const std::vector<int64_t> &v, const std::vector<int64_t> &perm) {
  std::vector<int64_t> out;
  for (int64_t p : perm)
    out.push_back(v[p]);
  return out;
}

/// A two-element i64 attribute of a conv (strides, dilations); 1s when absent.
void readPair(MlirOperation op, const char *name, int64_t (&out)[2]) {
  MlirAttribute a = mlirOperationGetAttributeByName(op, toRef(name));
  if (mlirAttributeIsNull(a) || !mlirAttributeIsADenseElements(a))
    return;
  for (intptr_t i = 0; i < 2; ++i)
    out[i] = mlirDenseElementsAttrGetInt64Value(a, i);
}

/// The static padding of a tensor.pad that pads with the constant 0.0.
void readPad(MlirOperation pad, const Layer &l, std::vector<int64_t> &low,
             std::vector<int64_t> &high) {
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(pad, 0));
  MlirValue padValue = mlirOperationGetOperand(mlirBlockGetTerminator(body), 0);
  bool zero = false;
  if (mlirValueIsAOpResult(padValue)) {
    MlirOperation def = mlirOpResultGetOwner(padValue);
    MlirAttribute v = mlirOperationGetAttributeByName(def, toRef("value"));
    zero = opName(def) == "arith.constant" && !mlirAttributeIsNull(v) &&
           mlirAttributeIsAFloat(v) && mlirFloatAttrGetValueDouble(v) == 0.0;
  }
  if (!zero)
    throw NativeError(layerName(l) + ": its pad value is not the constant 0.0");
  for (auto [name, out] : {std::pair{"static_low", &low}, std::pair{"static_high", &high}}) {
    MlirAttribute a = mlirOperationGetAttributeByName(pad, toRef(name));
    for (intptr_t i = 0, e = mlirDenseArrayGetNumElements(a); i < e; ++i) {
      int64_t x = mlirDenseI64ArrayGetElement(a, i);
      if (x == mlirShapedTypeGetDynamicSize())
        throw NativeError(layerName(l) + ": dynamic padding");
      out->push_back(x);
    }
  }
}

bool isChannelsLast(const Layer &l, const IntegerForm &form) {
  return form.contraction != IntegerForm::Contraction::Named &&
         (l.opName == kConvNchw || l.opName == kDepthwiseNchw);
}

/// Whether the conv goes through our im2col: gathered patches times the
/// collapsed HWCF weight, one matmul (the depthwise conv has no channel
/// reduction to gather: it stays a generic).
bool isIm2col(const Layer &l, const IntegerForm &form, const ConvGeometry &g) {
  return form.contraction == IntegerForm::Contraction::Im2col && !g.depthwise && !g.pointwise;
}

const char *storedType(Storage s) {
  return s == Storage::I16 ? "i16" : s == Storage::I32 ? "i32" : "i8";
}
const char *weightType(const IntegerForm &form) { return weightBits(form) == 32 ? "i32" : "i8"; }

/// The quantize generic from `in` (f32, `inShape`) to `%q0` (`shape`, the stored type), reading
/// `in` through `inMap` (channels-last forms read NCHW and write NHWC: the transpose is free
/// there, and IREE keeps it out of the contraction).
void quantizeText(std::ostringstream &t, const std::string &in, const std::vector<int64_t> &inShape,
                  const std::vector<int64_t> &shape, const std::string &inMap,
                  const RewriteParams &p) {
  size_t rank = shape.size();
  std::string tIn = tensorType(inShape, "f32"), tQ = tensorType(shape, storedType(p.form.storage));
  bool u8 = p.form.storage == Storage::U8;
  int32_t zp = p.zeroPoint + (u8 ? 128 : 0);
  t << "  %sx = arith.constant " << hexFloat(p.actScale) << " : f32\n"
    << "  %zp = arith.constant " << zp << ".0 : f32\n"
    // u8 codes live in i8 bits: 200 is written as its two's complement, -56.
    << "  %zp8 = arith.constant " << (zp > 127 ? zp - 256 : zp) << " : "
    << storedType(p.form.storage) << "\n"
    << "  %lo = arith.constant " << (u8 ? "0.0" : "-128.0") << " : f32\n"
    << "  %hi = arith.constant " << (u8 ? "255.0" : "127.0") << " : f32\n";
  if (p.form.reciprocal)
    t << "  %rcp = arith.constant " << hexFloat(1.0f / p.actScale) << " : f32\n"
      << "  %magic = arith.constant 12582912.0 : f32\n"
      << "  %mzp = arith.constant " << (12582912 - zp) << ".0 : f32\n";
  t << "  %eq = tensor.empty() : " << tQ << "\n"
    << "  %q0 = linalg.generic {indexing_maps = [" << inMap << ", "
    << identityMap(rank) << "], iterator_types = " << parallel(rank) << "} ins(" << in << " : "
    << tIn << ") outs(%eq : " << tQ << ") {\n  ^bb0(%a: f32, %o: " << storedType(p.form.storage)
    << "):\n";
  if (p.form.reciprocal) // Markstein: q = RN(x / s) exactly; then RN to an integer, + zp
    t << "    %q = arith.mulf %a, %rcp : f32\n"
      << "    %nq = arith.negf %q : f32\n"
      << "    %e = math.fma %nq, %sx, %a : f32\n"
      << "    %d = math.fma %e, %rcp, %q : f32\n"
      << "    %m = arith.addf %d, %magic : f32\n"
      << "    %z = arith.subf %m, %mzp : f32\n";
  else
    t << "    %d = arith.divf %a, %sx : f32\n"
      << "    %r = math.roundeven %d : f32\n"
      << "    %z = arith.addf %r, %zp : f32\n";
  t << "    %c0 = arith.maximumf %z, %lo : f32\n"
    << "    %c1 = arith.minimumf %c0, %hi : f32\n"
    // u8 codes (0..255) go through i32 and truncate: IREE 3.13 on x86 lowers a vector
    // fptoui to i8 with signed saturation in some fused dispatches (codes above 127 become 127).
    << (u8 ? "    %i32 = arith.fptosi %c1 : f32 to i32\n    %i = arith.trunci %i32 : i32 to i8\n"
           : std::string("    %i = arith.fptosi %c1 : f32 to ") + storedType(p.form.storage) +
                 "\n")
    << "    linalg.yield %i : " << storedType(p.form.storage) << "\n"
    << "  } -> " << tQ << "\n";
}

/// The node's own pads and reshapes in the stored type, from `%q0`, as
/// imported (NCHW). Returns the last value and its type.
std::pair<std::string, std::string> namedPrologue(const Layer &l, const char *elem,
                                                  std::ostringstream &t) {
  std::string cur = "%q0", curType = tensorType(l.inputShape, elem);
  int n = 1;
  for (MlirOperation p : l.prologue) {
    std::string name = std::string(opName(p));
    std::string next = "%q" + std::to_string(n++);
    std::string nextType = tensorType(staticShape(mlirOperationGetResult(p, 0)), elem);
    if (name == "tensor.pad") {
      std::vector<int64_t> low, high;
      readPad(p, l, low, high);
      t << padText(cur, next, low, high, curType, nextType, "%zp8", elem);
    } else if (name == "tensor.expand_shape" || name == "tensor.collapse_shape") {
      std::string reassoc = printAttr(mlirOperationGetAttributeByName(p, toRef("reassociation")));
      t << "  " << next << " = " << name << " " << cur << " " << reassoc;
      if (name == "tensor.expand_shape")
        t << " output_shape [" << joinDims(staticShape(mlirOperationGetResult(p, 0)), ", ")
          << "]";
      t << " : " << curType << " into " << nextType << "\n";
    } else {
      throw NativeError(layerName(l) + ": cannot quantize through " + name);
    }
    cur = next;
    curType = nextType;
  }
  return {cur, curType};
}

std::string mulAddBody(const char *actExt, const char *act, const char *wt) {
  std::string body = std::string("  ^bb0(%ca: ") + act + ", %cw: " + wt + ", %co: i32):\n";
  std::string a = "%ca", w = "%cw"; // i32 storage needs no extension
  if (std::string(act) != "i32") {
    body += std::string("    %xa = ") + actExt + " %ca : " + act + " to i32\n";
    a = "%xa";
  }
  if (std::string(wt) != "i32") {
    body += std::string("    %xw = arith.extsi %cw : ") + wt + " to i32\n";
    w = "%xw";
  }
  return body + "    %pm = arith.muli " + a + ", " + w + " : i32\n" +
         "    %ps = arith.addi %co, %pm : i32\n    linalg.yield %ps : i32\n";
}

/// The channels-last contraction of a conv or depthwise conv on `%qp` (NHWC,
/// padded) into `%acc` (NHWC i32).
void channelsLastContraction(const Layer &l, const ConvGeometry &g, const RewriteParams &p,
                             const std::string &in, const std::vector<int64_t> &inShape,
                             const std::vector<int64_t> &accShape, std::ostringstream &t) {
  const char *act = storedType(p.form.storage);
  const char *ext = p.form.storage == Storage::U8 ? "arith.extui" : "arith.extsi";
  std::string tIn = tensorType(inShape, act), tAcc = tensorType(accShape, "i32");
  const char *wt = weightType(p.form);
  std::string tW = tensorType(formWeightShape(l, p.form), wt);
  t << "  %z32 = arith.constant 0 : i32\n"
    << "  %ea = tensor.empty() : " << tAcc << "\n"
    << "  %acc0 = linalg.fill ins(%z32 : i32) outs(%ea : " << tAcc << ") -> " << tAcc << "\n";
  std::string col = in;
  int64_t m = accShape[1] * accShape[2], k = inShape[3];
  if (isIm2col(l, p.form, g)) { // [1, Ho, Wo, KH, KW, C] patches of the padded input
    // One strided slice of the input per kernel tap, inserted at (kh, kw): IREE copies each
    // as C-contiguous rows, 7x faster than a 6-D gather generic (docs/results/speed.md).
    std::vector<int64_t> w = l.weightShape; // FCHW
    std::vector<int64_t> patches = {1, accShape[1], accShape[2], w[2], w[3], inShape[3]};
    std::vector<int64_t> slice = {1, accShape[1], accShape[2], inShape[3]};
    std::string tPatch = tensorType(patches, act), tSlice = tensorType(slice, act);
    k = w[2] * w[3] * inShape[3];
    t << "  %pe0 = tensor.empty() : " << tPatch << "\n";
    int64_t n = 0;
    for (int64_t kh = 0; kh < w[2]; ++kh) {
      for (int64_t kw = 0; kw < w[3]; ++kw, ++n) {
        t << "  %ps" << n << " = tensor.extract_slice " << in << "[0, " << kh * g.dilations[0]
          << ", " << kw * g.dilations[1] << ", 0] [" << joinDims(slice, ", ") << "] [1, "
          << g.strides[0] << ", " << g.strides[1] << ", 1] : " << tIn << " to " << tSlice << "\n"
          << "  %pe" << n + 1 << " = tensor.insert_slice %ps" << n << " into %pe" << n
          << "[0, 0, 0, " << kh << ", " << kw << ", 0] [1, " << accShape[1] << ", "
          << accShape[2] << ", 1, 1, " << inShape[3] << "] [1, 1, 1, 1, 1, 1] : " << tSlice
          << " into " << tPatch << "\n";
      }
    }
    t << "  %col = tensor.collapse_shape %pe" << n << " [[0, 1, 2], [3, 4, 5]] : " << tPatch
      << " into " << tensorType({m, k}, act) << "\n";
    col = "%col";
  } else if (g.pointwise) { // [1, H, W, C] -> [H*W, C]
    t << "  %col = tensor.collapse_shape " << in << " [[0, 1, 2], [3]] : " << tIn << " into "
      << tensorType({m, k}, act) << "\n";
    col = "%col";
  }
  if (col != in) { // [M, K] x [K, F] -> [M, F] -> [1, Ho, Wo, F]
    // im2col rows padded with zeros to a multiple of 8, sliced off the result: IREE tiles rows
    // by 8 and runs leftover rows in scalar code (ResNet18's 7x7 layers: 7% of its A53 time).
    int64_t rows = isIm2col(l, p.form, g) ? (m + 7) / 8 * 8 : m;
    if (rows != m) {
      t << "  %zpad = arith.constant 0 : " << act << "\n"
        << "  %colp = tensor.pad %col low[0, 0] high[" << rows - m << ", 0] {\n"
        << "  ^bb0(%i0: index, %i1: index):\n    tensor.yield %zpad : " << act << "\n  } : "
        << tensorType({m, k}, act) << " to " << tensorType({rows, k}, act) << "\n";
      col = "%colp";
    }
    std::string tCol = tensorType({rows, k}, act), tMat = tensorType({rows, accShape[3]}, "i32");
    t << "  %em = tensor.empty() : " << tMat << "\n"
      << "  %mz = linalg.fill ins(%z32 : i32) outs(%em : " << tMat << ") -> " << tMat << "\n";
    if (p.form.storage == Storage::U8)
      t << "  %mm = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, "
           "affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], "
           "iterator_types = [\"parallel\", \"parallel\", \"reduction\"]} ins("
        << col << ", %w : " << tCol << ", " << tW << ") outs(%mz : " << tMat << ") {\n"
        << mulAddBody(ext, act, wt) << "  } -> " << tMat << "\n";
    else
      t << "  %mm = linalg.matmul ins(" << col << ", %w : " << tCol << ", " << tW << ") outs(%mz : " << tMat
        << ") -> " << tMat << "\n";
    std::string mm = "%mm";
    if (rows != m) {
      std::string tRows = tensorType({m, accShape[3]}, "i32");
      t << "  %mms = tensor.extract_slice %mm[0, 0] [" << m << ", " << accShape[3]
        << "] [1, 1] : " << tMat << " to " << tRows << "\n";
      mm = "%mms";
      tMat = tRows;
    }
    t << "  %acc = tensor.expand_shape " << mm << " [[0, 1, 2], [3]] output_shape ["
      << joinDims(accShape, ", ") << "] : " << tMat << " into " << tAcc << "\n";
    return;
  }
  std::string maps = channelsLastMaps(g);
  t << "  %acc = linalg.generic {indexing_maps = [" << maps << "} ins(" << in << ", %w : " << tIn
    << ", "
    << tW << ") outs(%acc0 : " << tAcc << ") {\n"
    << mulAddBody(ext, act, wt) << "  } -> " << tAcc << "\n";
}

} // namespace

std::string channelsLastMaps(const ConvGeometry &g) {
  std::string sh = std::to_string(g.strides[0]), sw = std::to_string(g.strides[1]);
  std::string dh = std::to_string(g.dilations[0]), dw = std::to_string(g.dilations[1]);
  if (g.depthwise) // (n, oh, ow, c, kh, kw)
    return "affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1 * " + sh + " + d4 * " + dh +
           ", d2 * " + sw + " + d5 * " + dw + ", d3)>, affine_map<(d0, d1, d2, d3, d4, d5) -> "
           "(d4, d5, d3)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>], "
           "iterator_types = [\"parallel\", \"parallel\", \"parallel\", \"parallel\", "
           "\"reduction\", \"reduction\"]";
  // (n, oh, ow, f, kh, kw, c)
  return "affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1 * " + sh + " + d4 * " + dh +
         ", d2 * " + sw + " + d5 * " + dw + ", d6)>, affine_map<(d0, d1, d2, d3, d4, d5, d6) "
         "-> (d4, d5, d6, d3)>, affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3)>], "
         "iterator_types = [\"parallel\", \"parallel\", \"parallel\", \"parallel\", "
         "\"reduction\", \"reduction\", \"reduction\"]";
}

ConvGeometry convGeometry(const Layer &l) {
  ConvGeometry g;
  g.depthwise = l.opName == kDepthwiseNchw;
  if (!g.depthwise && l.opName != kConvNchw)
    throw NativeError(layerName(l) + ": channels-last needs a 2-D NCHW conv, not " + l.opName);
  readPair(l.op, "strides", g.strides);
  readPair(l.op, "dilations", g.dilations);
  if (l.prologue.size() > 1 ||
      (l.prologue.size() == 1 && opName(l.prologue[0]) != "tensor.pad"))
    throw NativeError(layerName(l) + ": channels-last cannot go through the node's reshapes");
  if (l.prologue.empty()) {
    g.low.assign(4, 0);
    g.high.assign(4, 0);
  } else {
    readPad(l.prologue[0], l, g.low, g.high);
  }
  bool unpadded = true;
  for (size_t i = 0; i < 4; ++i)
    unpadded = unpadded && g.low[i] == 0 && g.high[i] == 0;
  g.pointwise = !g.depthwise && l.weightShape[2] == 1 && l.weightShape[3] == 1 &&
                g.strides[0] == 1 && g.strides[1] == 1 && unpadded;
  return g;
}

std::vector<int64_t> weightPermutation(const Layer &l, const IntegerForm &form) {
  if (!isChannelsLast(l, form))
    return {};
  return l.opName == kDepthwiseNchw ? std::vector<int64_t>{1, 2, 0}        // CHW -> HWC
                                    : std::vector<int64_t>{2, 3, 1, 0};    // FCHW -> HWCF
}

unsigned weightBits(const IntegerForm &form) { return form.storage == Storage::I32 ? 32 : 8; }

std::vector<int64_t> formWeightShape(const Layer &l, const IntegerForm &form) {
  std::vector<int64_t> perm = weightPermutation(l, form);
  if (perm.empty())
    return l.weightShape;
  std::vector<int64_t> shape = permute(l.weightShape, perm);
  ConvGeometry g = convGeometry(l);
  if (g.pointwise || isIm2col(l, form, g))
    return {shape[0] * shape[1] * shape[2], shape[3]}; // [KH, KW, C, F] -> [KH*KW*C, F]
  return shape;
}

std::string integerRewriteText(const Layer &l, const RewriteParams &p) {
  bool cl = isChannelsLast(l, p.form);
  if (!cl && p.form.storage == Storage::U8)
    throw NativeError(layerName(l) + ": u8 activations need the channels-last or im2col form "
                                     "(named ops sign-extend their operands)");
  const char *elem = storedType(p.form.storage);
  MlirValue init = mlirOperationGetOperand(l.op, 2);
  std::string tX = printType(mlirValueGetType(l.input));
  std::string tW = tensorType(formWeightShape(l, p.form), weightType(p.form));
  std::string tOut = printType(mlirValueGetType(init));
  std::vector<int64_t> outShape = staticShape(mlirOperationGetResult(l.op, 0));
  std::string tS = tensorType(p.channelShape, "f32"), tC = tensorType(p.channelShape, "i32");
  std::ostringstream t;
  t << "func.func @quantune_layer(%x: " << tX << ", %w: " << tW << ", %init: " << tOut
    << ", %s: " << tS << ", %corr: " << tC << ") -> " << tOut << " {\n";

  std::vector<int64_t> accShape = outShape, chanMap(l.outputChannelDims.begin(),
                                                     l.outputChannelDims.end());
  std::string acc = "%acc";
  if (cl) {
    ConvGeometry g = convGeometry(l);
    std::vector<int64_t> xShape = permute(l.inputShape, kToNhwc);
    quantizeText(t, "%x", l.inputShape, xShape, affineMap(4, kToNchw), p);
    std::vector<int64_t> low = permute(g.low, kToNhwc), high = permute(g.high, kToNhwc);
    std::vector<int64_t> padded = xShape;
    for (size_t i = 0; i < 4; ++i)
      padded[i] += low[i] + high[i];
    if (padded != xShape)
      t << padText("%q0", "%qp", low, high, tensorType(xShape, elem), tensorType(padded, elem),
                   "%zp8", elem);
    accShape = permute(outShape, kToNhwc);
    chanMap = {3};
    channelsLastContraction(l, g, p, padded != xShape ? "%qp" : "%q0", padded, accShape, t);
  } else {
    quantizeText(t, "%x", l.inputShape, l.inputShape, identityMap(l.inputShape.size()), p);
    auto [cur, curType] = namedPrologue(l, elem, t);
    std::string tAcc = tensorType(outShape, "i32");
    t << "  %z32 = arith.constant 0 : i32\n"
      << "  %ea = tensor.empty() : " << tAcc << "\n"
      << "  %acc0 = linalg.fill ins(%z32 : i32) outs(%ea : " << tAcc << ") -> " << tAcc << "\n"
      << "  %acc = " << l.opName << " " << namedOpAttrs(l.op) << "ins(" << cur << ", %w : "
      << curType << ", " << tW << ") outs(%acc0 : " << tAcc << ") -> " << tAcc << "\n";
  }

  // Dequantize from the accumulator's layout into the layer's (channels-last forms write NCHW
  // through the output map).
  size_t rank = accShape.size();
  std::string outMap = cl ? affineMap(rank, kToNchw) : identityMap(rank);
  std::string tAcc = tensorType(accShape, "i32");
  t << "  %eo = tensor.empty() : " << tOut << "\n"
    << "  %out = linalg.generic {indexing_maps = [" << identityMap(rank) << ", "
    << affineMap(rank, chanMap) << ", " << affineMap(rank, chanMap)
    << (p.addInit ? ", " + outMap : std::string()) << ", " << outMap
    << "], iterator_types = " << parallel(rank) << "} ins(" << acc << ", %s, %corr"
    << (p.addInit ? ", %init" : "") << " : " << tAcc << ", " << tS << ", " << tC
    << (p.addInit ? ", " + tOut : std::string()) << ") outs(%eo : " << tOut
    << ") {\n  ^bb0(%a: i32, %sc: f32, %cc: i32" << (p.addInit ? ", %b: f32" : "")
    << ", %o: f32):\n"
    << "    %0 = arith.subi %a, %cc : i32\n"
    << "    %1 = arith.sitofp %0 : i32 to f32\n"
    << "    %2 = arith.mulf %1, %sc : f32\n";
  if (p.addInit)
    t << "    %3 = arith.addf %2, %b : f32\n    linalg.yield %3 : f32\n";
  else
    t << "    linalg.yield %2 : f32\n";
  t << "  } -> " << tOut << "\n";
  std::string result = "%out";
  t << "  return " << result << " : " << tOut << "\n}\n";
  return t.str();
}

} // namespace quantune
