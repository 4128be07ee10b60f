//===- ActivationMatmul.cpp - Integer form of activation x activation -----===//
//
// A matmul whose both operands are activations (attention's Q.K^T and
// attn.V) has no weight constant: both operands are quantized at run time.
// The left one like any layer input (q = clamp(rne(x / s_x) + zp)), through
// the node's own reshapes in the stored type; the right one symmetric with the
// caller's scale (q = clamp(rne(y / s_y), +-127)), so the accumulator needs
// one correction, zp * sum_k q_y[k, n]; then float(acc - corr) * (s_x * s_y).
// Part of quantune-quantize-layers (QuantizeLayers.cpp calls it).
//
//===----------------------------------------------------------------------===//

#include "quantune/ActivationMatmul.h"
#include "quantune/CAPIHelpers.h"
#include "quantune/IRText.h"
#include "quantune/LayerWeights.h"
#include "quantune/Splice.h"

#include <cmath>
#include <sstream>

namespace quantune {
namespace {

using Storage = IntegerForm::Storage;

/// The stored type: i16/i32 where the target wants them, else signed i8
/// (the u8 form is for weights' dot products; both operands here are signed).
const char *storedType(const IntegerForm &form) {
  return form.storage == Storage::I16 ? "i16" : form.storage == Storage::I32 ? "i32" : "i8";
}

/// `out` = clamp(rne(in / scale) + zp, lo, hi) in `elem`, elementwise.
void quantizeText(std::ostringstream &t, const std::string &in, const std::string &out,
                  const std::vector<int64_t> &shape, float scale, int32_t zp, float lo, float hi,
                  const char *elem) {
  std::string tIn = tensorType(shape, "f32"), tOut = tensorType(shape, elem), p = out.substr(1);
  t << "  %" << p << "_e = tensor.empty() : " << tOut << "\n"
    << "  " << out << " = linalg.generic {indexing_maps = [" << identityMap(shape.size()) << ", "
    << identityMap(shape.size()) << "], iterator_types = " << parallel(shape.size()) << "} ins("
    << in << " : " << tIn << ") outs(%" << p << "_e : " << tOut << ") {\n"
    << "  ^bb0(%a: f32, %o: " << elem << "):\n"
    << "    %s = arith.constant " << hexFloat(scale) << " : f32\n"
    << "    %zp = arith.constant " << zp << ".0 : f32\n"
    << "    %lo = arith.constant " << hexFloat(lo) << " : f32\n"
    << "    %hi = arith.constant " << hexFloat(hi) << " : f32\n"
    << "    %d = arith.divf %a, %s : f32\n"
    << "    %r = math.roundeven %d : f32\n"
    << "    %z = arith.addf %r, %zp : f32\n"
    << "    %c0 = arith.maximumf %z, %lo : f32\n"
    << "    %c1 = arith.minimumf %c0, %hi : f32\n"
    << "    %i = arith.fptosi %c1 : f32 to " << elem << "\n"
    << "    linalg.yield %i : " << elem << "\n"
    << "  } -> " << tOut << "\n";
}

/// The node's own reshapes between its input and the matmul, replayed on the
/// codes; returns the value that feeds the matmul.
std::string reshapesText(const Layer &l, const char *elem, std::ostringstream &t) {
  std::string cur = "%qx0", curType = tensorType(l.inputShape, elem);
  int n = 1;
  for (MlirOperation p : l.prologue) {
    std::string name(opName(p)), next = "%qx" + std::to_string(n++);
    if (name != "tensor.expand_shape" && name != "tensor.collapse_shape")
      throw NativeError(layerName(l) + ": cannot quantize through " + name);
    std::vector<int64_t> shape = staticShape(mlirOperationGetResult(p, 0));
    std::string nextType = tensorType(shape, elem);
    t << "  " << next << " = " << name << " " << cur << " "
      << printAttr(mlirOperationGetAttributeByName(p, toRef("reassociation")));
    if (name == "tensor.expand_shape")
      t << " output_shape [" << joinDims(shape, ", ") << "]";
    t << " : " << curType << " into " << nextType << "\n";
    cur = next;
    curType = nextType;
  }
  return cur;
}

std::string rewriteText(const Layer &l, const LayerQuantization &q, float outScale) {
  const char *elem = storedType(q.form);
  std::vector<int64_t> lhs = staticShape(mlirOperationGetOperand(l.op, 0));
  std::vector<int64_t> rhs = staticShape(mlirOperationGetOperand(l.op, 1));
  std::vector<int64_t> out = staticShape(mlirOperationGetResult(l.op, 0));
  size_t rank = out.size(); // 2 (matmul) or 3 (batch_matmul): [b,] m, n
  std::string tX = tensorType(l.inputShape, "f32"), tY = tensorType(rhs, "f32");
  std::string tAcc = tensorType(out, "i32"), tOut = tensorType(out, "f32");
  std::vector<int64_t> sumShape(out.begin(), out.end());
  sumShape.erase(sumShape.end() - 2); // [b,] n
  std::ostringstream t;
  t << "func.func @quantune_layer(%x: " << tX << ", %y: " << tY << ") -> " << tOut << " {\n";
  quantizeText(t, "%x", "%qx0", l.inputShape, q.actScale, q.actZeroPoint, -128.0f, 127.0f, elem);
  std::string qx = reshapesText(l, elem, t);
  quantizeText(t, "%y", "%qy", rhs, q.weightScales[0], 0, -127.0f, 127.0f, elem);
  t << "  %z32 = arith.constant 0 : i32\n"
    << "  %ea = tensor.empty() : " << tAcc << "\n"
    << "  %acc0 = linalg.fill ins(%z32 : i32) outs(%ea : " << tAcc << ") -> " << tAcc << "\n"
    << "  %acc = " << l.opName << " ins(" << qx << ", %qy : " << tensorType(lhs, elem) << ", "
    << tensorType(rhs, elem) << ") outs(%acc0 : " << tAcc << ") -> " << tAcc << "\n";
  // corr[b, n] = zp * sum_k qy[b, k, n]; the loops are (b,) k, n.
  std::string tSum = tensorType(sumShape, "i32");
  std::string loops = rank == 3 ? "(d0, d1, d2)" : "(d0, d1)";
  std::string yMap = "affine_map<" + loops + " -> " + loops + ">";
  std::string sMap = rank == 3 ? "affine_map<(d0, d1, d2) -> (d0, d2)>"
                               : "affine_map<(d0, d1) -> (d1)>";
  std::string its = rank == 3 ? "[\"parallel\", \"reduction\", \"parallel\"]"
                              : "[\"reduction\", \"parallel\"]";
  t << "  %es = tensor.empty() : " << tSum << "\n"
    << "  %s0 = linalg.fill ins(%z32 : i32) outs(%es : " << tSum << ") -> " << tSum << "\n"
    << "  %corr = linalg.generic {indexing_maps = [" << yMap << ", " << sMap
    << "], iterator_types = " << its << "} ins(%qy : " << tensorType(rhs, elem) << ") outs(%s0 : "
    << tSum << ") {\n  ^bb0(%v: " << elem << ", %c: i32):\n";
  if (std::string(elem) != "i32")
    t << "    %w = arith.extsi %v : " << elem << " to i32\n";
  else
    t << "    %w = arith.addi %v, %z32 : i32\n";
  t << "    %zp = arith.constant " << q.actZeroPoint << " : i32\n"
    << "    %m = arith.muli %w, %zp : i32\n"
    << "    %a = arith.addi %c, %m : i32\n    linalg.yield %a : i32\n  } -> " << tSum << "\n";
  // out = float(acc - corr[b, n]) * (s_x * s_y)
  std::string cMap = rank == 3 ? "affine_map<(d0, d1, d2) -> (d0, d2)>"
                               : "affine_map<(d0, d1) -> (d1)>";
  t << "  %eo = tensor.empty() : " << tOut << "\n"
    << "  %out = linalg.generic {indexing_maps = [" << identityMap(rank) << ", " << cMap << ", "
    << identityMap(rank) << "], iterator_types = " << parallel(rank) << "} ins(%acc, %corr : "
    << tAcc << ", " << tSum << ") outs(%eo : " << tOut << ") {\n"
    << "  ^bb0(%v: i32, %c: i32, %o: f32):\n"
    << "    %d = arith.subi %v, %c : i32\n"
    << "    %f = arith.sitofp %d : i32 to f32\n"
    << "    %s = arith.constant " << hexFloat(outScale) << " : f32\n"
    << "    %r = arith.mulf %f, %s : f32\n    linalg.yield %r : f32\n  } -> " << tOut << "\n"
    << "  return %out : " << tOut << "\n}\n";
  return t.str();
}

} // namespace

void quantizeActivationMatmul(const Layer &l, const LayerQuantization &q) {
  if (l.kind != LayerKind::Matmul && l.kind != LayerKind::BatchMatmul)
    throw NativeError(layerName(l) + ": its weight is not a constant");
  if (q.weightScales.size() != 1 || !(q.weightScales[0] > 0.0f) ||
      !std::isfinite(q.weightScales[0]))
    throw NativeError(layerName(l) + ": an activation x activation matmul needs one positive "
                                     "scale for its second operand");
  if (!isZeroFill(mlirOperationGetOperand(l.op, 2)))
    throw NativeError(layerName(l) + ": its accumulator does not start at zero");
  if (!q.biasCorrection.empty() || !q.weightOffsets.empty())
    throw NativeError(layerName(l) + ": an activation x activation matmul takes no bias "
                                     "correction or weight offsets");
  float outScale = q.actScale * q.weightScales[0];
  std::string text = rewriteText(l, q, outScale);
  MlirContext ctx = mlirOperationGetContext(l.op);
  bool seenContraction = false;
  auto tag = [&](MlirOperation op) {
    if (!seenContraction && opName(op) == l.opName) {
      seenContraction = true;
      mlirOperationSetAttributeByName(op, toRef(kLayerAttr),
                                      mlirIntegerAttrGet(mlirIntegerTypeGet(ctx, 64), l.id));
      mlirOperationSetAttributeByName(op, toRef(kOpAttr), mlirStringAttrGet(ctx, toRef(l.opName)));
    } else if (opName(op) == "linalg.generic") {
      const char *role = seenContraction ? kRoleDequantize : kRoleQuantize;
      mlirOperationSetAttributeByName(op, toRef(kRoleAttr), mlirStringAttrGet(ctx, toRef(role)));
    }
  };
  MlirValue replacement =
      spliceFunction(l.op, text, {l.input, mlirOperationGetOperand(l.op, 1)}, tag, layerName(l));
  mlirValueReplaceAllUsesOfWith(mlirOperationGetResult(l.op, 0), replacement);
  eraseWithDeadProducers(l.op);
}

} // namespace quantune
