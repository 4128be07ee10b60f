//===- IRText.cpp - MLIR text for the rewrites ----------------------------===//
//
// quantune-quantize-layers writes each rewrite as MLIR text and parses it
// (the C API builds no linalg ops); these print the pieces exactly.
//
//===----------------------------------------------------------------------===//

#include "quantune/IRText.h"
#include "quantune/CAPIHelpers.h"

#include <cstring>
#include <sstream>

namespace quantune {

std::string joinDims(const std::vector<int64_t> &dims, const char *sep) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? sep : "") + std::to_string(dims[i]);
  return s;
}

std::string tensorType(const std::vector<int64_t> &shape, const char *elem) {
  return "tensor<" + joinDims(shape, "x") + "x" + elem + ">";
}

std::string printAttr(MlirAttribute attr) {
  std::string s;
  mlirAttributePrint(attr, appendCallback, &s);
  return s;
}

/// A float as an MLIR hex literal, so the template carries its exact bits.
std::string hexFloat(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  std::ostringstream os;
  os << "0x" << std::hex << std::uppercase << bits;
  return os.str();
}

std::string affineMap(size_t rank, const std::vector<int64_t> &results) {
  std::string dims, res;
  for (size_t i = 0; i < rank; ++i)
    dims += (i ? ", d" : "d") + std::to_string(i);
  for (size_t i = 0; i < results.size(); ++i)
    res += (i ? ", d" : "d") + std::to_string(results[i]);
  return "affine_map<(" + dims + ") -> (" + res + ")>";
}

std::string identityMap(size_t rank) {
  std::vector<int64_t> all;
  for (size_t i = 0; i < rank; ++i)
    all.push_back(static_cast<int64_t>(i));
  return affineMap(rank, all);
}

std::string parallel(size_t rank) {
  std::string s;
  for (size_t i = 0; i < rank; ++i)
    s += i ? ", \"parallel\"" : "\"parallel\"";
  return "[" + s + "]";
}

/// The attributes of a named linalg op in its custom syntax (explicit
/// indexing maps first, then an attr-dict), minus the ones it derives.
std::string namedOpAttrs(MlirOperation op) {
  std::string s, maps;
  for (intptr_t i = 0, e = mlirOperationGetNumAttributes(op); i < e; ++i) {
    MlirNamedAttribute a = mlirOperationGetAttribute(op, i);
    std::string_view name = toView(mlirIdentifierStr(a.name));
    if (name == "operandSegmentSizes" || startsWith(name, "quantune."))
      continue;
    if (name == "indexing_maps") {
      maps = "indexing_maps = " + printAttr(a.attribute) + " ";
      continue;
    }
    s += (s.empty() ? "" : ", ") + std::string(name) + " = " + printAttr(a.attribute);
  }
  return maps + (s.empty() ? "" : "{" + s + "} ");
}

std::string padText(const std::string &in, const std::string &out, const std::vector<int64_t> &low,
                    const std::vector<int64_t> &high, const std::string &inType,
                    const std::string &outType, const std::string &value, const char *elem) {
  std::string args;
  for (size_t i = 0; i < low.size(); ++i)
    args += (i ? ", %i" : "%i") + std::to_string(i) + ": index";
  return "  " + out + " = tensor.pad " + in + " low[" + joinDims(low, ", ") + "] high[" +
         joinDims(high, ", ") + "] {\n  ^bb0(" + args + "):\n    tensor.yield " + value + " : " +
         elem + "\n  } : " + inType + " to " + outType + "\n";
}

} // namespace quantune
