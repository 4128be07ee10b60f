//===- IRText.h - MLIR text for the rewrites ------------------------------===//
//
// Printing helpers for rewrites written as MLIR text: shapes, tensor types,
// affine maps, exact float literals and a named op's attributes.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_IRTEXT_H
#define QUANTUNE_IRTEXT_H

#include "mlir-c/IR.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantune {

/// `dims` joined by `sep`: {1, 2} → "1x2" with "x".
std::string joinDims(const std::vector<int64_t> &dims, const char *sep);
/// "tensor<1x2xi8>" for shape {1, 2} and element "i8".
std::string tensorType(const std::vector<int64_t> &shape, const char *elem);
std::string printAttr(MlirAttribute attr);
/// A float as an MLIR hex literal, so the text carries its exact bits.
std::string hexFloat(float f);
/// affine_map<(d0, ..., d{rank-1}) -> (d{results...})>.
std::string affineMap(size_t rank, const std::vector<int64_t> &results);
std::string identityMap(size_t rank);
/// ["parallel", ...] for `rank` loops.
std::string parallel(size_t rank);
/// `out` = tensor.pad of `in` with `low`/`high`, yielding the SSA value
/// `value` of element type `elem`.
std::string padText(const std::string &in, const std::string &out, const std::vector<int64_t> &low,
                    const std::vector<int64_t> &high, const std::string &inType,
                    const std::string &outType, const std::string &value, const char *elem);
/// The attributes of a named linalg op in its custom syntax (explicit
/// indexing maps first, then an attr-dict), minus the ones it derives and
/// quantune's own.
std::string namedOpAttrs(MlirOperation op);

} // namespace quantune

#endif // QUANTUNE_IRTEXT_H
