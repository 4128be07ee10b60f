//===- CAPIHelpers.h - Glue shared by the quantune passes -----------------===//
//
// The passes reach IREE's MLIR only through the C API exported by
// libIREECompiler.so. This header keeps the repeated glue in one place:
// string refs, op-name tests, location → ONNX node name, diagnostics capture
// and the error type that Bindings.cpp turns into a Python exception.
//
//===----------------------------------------------------------------------===//

#ifndef QUANTUNE_CAPIHELPERS_H
#define QUANTUNE_CAPIHELPERS_H

#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Diagnostics.h"
#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"
#include "mlir-c/Support.h"

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace quantune {

/// The one error the native code raises; bindings map it to NativeError.
class NativeError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

inline MlirStringRef toRef(std::string_view s) {
  return mlirStringRefCreate(s.data(), s.size());
}
inline std::string_view toView(MlirStringRef r) {
  return std::string_view(r.data, r.length);
}

inline std::string_view opName(MlirOperation op) {
  return toView(mlirIdentifierStr(mlirOperationGetName(op)));
}

inline bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

/// Appends printed MLIR text (types, attributes) to a std::string.
inline void appendCallback(MlirStringRef part, void *userData) {
  static_cast<std::string *>(userData)->append(part.data, part.length);
}

inline std::string printType(MlirType type) {
  std::string s;
  mlirTypePrint(type, appendCallback, &s);
  return s;
}

/// The ONNX node name carried by a location: the first NameLoc found in it
/// (through fused and call-site locations), or "" when there is none.
inline std::string nodeName(MlirLocation loc) {
  if (mlirLocationIsAName(loc))
    return std::string(toView(mlirIdentifierStr(mlirLocationNameGetName(loc))));
  if (mlirLocationIsAFused(loc)) {
    intptr_t n = mlirLocationFusedGetNumLocations(loc);
    std::vector<MlirLocation> parts(n);
    mlirLocationFusedGetLocations(loc, parts.data());
    for (MlirLocation part : parts) {
      std::string name = nodeName(part);
      if (!name.empty())
        return name;
    }
    return "";
  }
  if (mlirLocationIsACallSite(loc))
    return nodeName(mlirLocationCallSiteGetCallee(loc));
  return "";
}

/// Static shape of a ranked tensor value; throws for anything else.
inline std::vector<int64_t> staticShape(MlirValue v) {
  MlirType t = mlirValueGetType(v);
  if (!mlirTypeIsARankedTensor(t))
    throw NativeError("expected a ranked tensor, got " + printType(t));
  std::vector<int64_t> shape;
  for (intptr_t i = 0, e = mlirShapedTypeGetRank(t); i < e; ++i)
    shape.push_back(mlirShapedTypeGetDimSize(t, i));
  return shape;
}

/// Collects the diagnostics emitted on a context while it is alive, so a
/// failed pass or verification can be reported with MLIR's own words.
class DiagnosticCapture {
public:
  explicit DiagnosticCapture(MlirContext ctx) : ctx(ctx) {
    id = mlirContextAttachDiagnosticHandler(ctx, &DiagnosticCapture::handle,
                                            this, nullptr);
  }
  ~DiagnosticCapture() { detach(); }
  /// Stops collecting; idempotent.
  void detach() {
    if (attached)
      mlirContextDetachDiagnosticHandler(ctx, id);
    attached = false;
  }
  DiagnosticCapture(const DiagnosticCapture &) = delete;
  DiagnosticCapture &operator=(const DiagnosticCapture &) = delete;

  const std::string &text() const { return messages; }

private:
  static MlirLogicalResult handle(MlirDiagnostic diag, void *userData) {
    auto *self = static_cast<DiagnosticCapture *>(userData);
    if (!self->messages.empty())
      self->messages += "\n";
    std::string loc;
    mlirLocationPrint(mlirDiagnosticGetLocation(diag), appendCallback, &loc);
    self->messages += loc + ": ";
    mlirDiagnosticPrint(diag, appendCallback, &self->messages);
    return mlirLogicalResultSuccess();
  }

  MlirContext ctx;
  MlirDiagnosticHandlerID id;
  bool attached = true;
  std::string messages;
};

/// Creates an external pass on builtin.module that runs `Body` with the
/// caller-owned `options` (which must outlive the pass). A NativeError thrown
/// by `Body` fails the pass, its message left in `options->error`. Each
/// instantiation gets its own pass TypeID.
template <typename Options, void (*Body)(MlirOperation, Options &)>
MlirPass createModulePass(std::string_view name, std::string_view argument,
                          std::string_view description, Options *options) {
  struct Callbacks {
    static void construct(void *) {}
    static void destruct(void *) {}
    static void *clone(void *userData) { return userData; }
    static void run(MlirOperation op, MlirExternalPass pass, void *userData) {
      auto *opts = static_cast<Options *>(userData);
      try {
        Body(op, *opts);
      } catch (const NativeError &e) {
        opts->error = e.what();
        mlirExternalPassSignalFailure(pass);
      }
    }
  };
  static MlirTypeIDAllocator allocator = mlirTypeIDAllocatorCreate();
  static MlirTypeID passId = mlirTypeIDAllocatorAllocateTypeID(allocator);
  MlirExternalPassCallbacks callbacks{Callbacks::construct, Callbacks::destruct,
                                      nullptr, Callbacks::clone, Callbacks::run};
  return mlirCreateExternalPass(passId, toRef(name), toRef(argument),
                                toRef(description), toRef("builtin.module"), 0,
                                nullptr, callbacks, options);
}

} // namespace quantune

#endif // QUANTUNE_CAPIHELPERS_H
