//===- ActivationMatmul.h - Integer form of activation x activation -------===//
//
// Rewrites one float matmul / batch_matmul whose second operand is an
// activation, not a constant, into i8 x i8 -> i32 compute: the first operand
// with the layer's activation scale and zero point, the second symmetric with
// the single scale in weightScales. Part of quantune-quantize-layers.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_ACTIVATIONMATMUL_H
#define QUANTUNE_ACTIVATIONMATMUL_H

#include "quantune/LayerTable.h"
#include "quantune/QuantizeLayers.h"

namespace quantune {

/// Rewrites `l` in place; throws NativeError when it cannot.
void quantizeActivationMatmul(const Layer &l, const LayerQuantization &q);

} // namespace quantune

#endif // QUANTUNE_ACTIVATIONMATMUL_H
