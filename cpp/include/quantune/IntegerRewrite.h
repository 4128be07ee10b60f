//===- IntegerRewrite.h - The MLIR text of one layer's integer form -------===//
//
// quantune-quantize-layers writes each layer's rewrite as a function in MLIR
// text, (x, w, init, scale, offset) -> out, and splices its body in place of
// the float op. This builds that text for every IntegerForm.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_INTEGERREWRITE_H
#define QUANTUNE_INTEGERREWRITE_H

#include "quantune/LayerTable.h"
#include "quantune/QuantizeLayers.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantune {

/// A 2-D NCHW conv or depthwise conv as channels-last sees it.
struct ConvGeometry {
  bool depthwise = false;
  bool pointwise = false; // 1x1, stride 1, no padding: a matmul over pixels
  int64_t strides[2] = {1, 1}, dilations[2] = {1, 1};
  std::vector<int64_t> low, high; // the node's padding, NCHW order
};

/// The geometry of `l` for the channels-last form; throws NativeError when
/// the layer is no 2-D NCHW conv or depthwise conv with a zero pad.
ConvGeometry convGeometry(const Layer &l);

/// The indexing maps and iterator types of the channels-last linalg.generic
/// for `g` (NHWC input, HWCF or HWC weight, NHWC result), as the text after
/// `indexing_maps = [` up to the closing of the iterator types.
std::string channelsLastMaps(const ConvGeometry &g);

/// The permutation that takes the op's weight operand to the layout the form
/// reads (new dim i = old dim perm[i]); empty when it reads it as it is.
std::vector<int64_t> weightPermutation(const Layer &l, const IntegerForm &form);

/// The weight constant's shape for the form.
std::vector<int64_t> formWeightShape(const Layer &l, const IntegerForm &form);

/// The weight constant's element width in bits: 32 with i32 storage, else 8.
unsigned weightBits(const IntegerForm &form);

/// What the rewrite's text needs besides the layer.
struct RewriteParams {
  IntegerForm form;
  float actScale = 1.0f;
  int32_t zeroPoint = 0;              // of the signed codes
  std::vector<int64_t> channelShape;  // the shape of the scale and offset
  bool addInit = false;               // the op's init is added in f32 at the end
};

/// func.func @quantune_layer(%x, %w, %init, %s, %corr) -> the layer's result:
/// quantize, the node's pads in the stored type, the contraction to i32 and
/// the dequantize (float(acc - corr) * s, + init when addInit).
std::string integerRewriteText(const Layer &l, const RewriteParams &p);

} // namespace quantune

#endif // QUANTUNE_INTEGERREWRITE_H
