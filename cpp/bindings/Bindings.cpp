//===- Bindings.cpp - quantune_iree._native -------------------------------===//
//
// pybind11 module over the C++ passes. Python objects from iree.compiler.ir
// cross as MLIR capsules (`_CAPIPtr`); every failure of the native side is
// raised as _native.NativeError, which quantune_iree turns into
// QuantuneError in one place (quantune_iree/ir/native.py). C++ enums become
// the strings Python uses here, and only here.
//
//   iree.compiler.ir.Module / Operation  → MlirOperation (the module op)
//   Layer (C++)                          → _native.Layer
//   TapResult / TapEntry (C++)           → _native.TapResult / TapEntry
//   LayerQuantization (C++)              → _native.LayerQuantization
//
//===----------------------------------------------------------------------===//

#include "quantune/CAPIHelpers.h"
#include "quantune/ChannelsLast.h"
#include "quantune/InsertTaps.h"
#include "quantune/LayerTable.h"
#include "quantune/QuantizeLayers.h"

#include "mlir-c/Pass.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>

namespace py = pybind11;
using namespace quantune;

namespace {

// Capsule names of iree.compiler's MLIR Python bindings (see MLIR's
// mlir-c/Bindings/Python/Interop.h, with the "iree.compiler." prefix).
constexpr const char *kModuleCapsule = "iree.compiler.ir.Module._CAPIPtr";
constexpr const char *kOperationCapsule = "iree.compiler.ir.Operation._CAPIPtr";
constexpr const char *kContextCapsule = "iree.compiler.ir.Context._CAPIPtr";

MlirContext toContext(const py::object &obj) {
  py::object capsule = obj.attr("_CAPIPtr");
  void *ptr = PyCapsule_GetPointer(capsule.ptr(), kContextCapsule);
  if (!ptr) {
    PyErr_Clear();
    throw NativeError("expected an iree.compiler.ir Context");
  }
  return MlirContext{ptr};
}

/// The module operation behind an iree.compiler.ir Module or Operation.
MlirOperation toModuleOp(const py::object &obj) {
  if (!py::hasattr(obj, "_CAPIPtr"))
    throw NativeError("expected an iree.compiler.ir Module or Operation");
  py::object capsule = obj.attr("_CAPIPtr");
  const char *name = PyCapsule_GetName(capsule.ptr());
  MlirOperation op{nullptr};
  if (name && std::strcmp(name, kModuleCapsule) == 0)
    op = mlirModuleGetOperation(
        MlirModule{PyCapsule_GetPointer(capsule.ptr(), kModuleCapsule)});
  else if (name && std::strcmp(name, kOperationCapsule) == 0)
    op = MlirOperation{PyCapsule_GetPointer(capsule.ptr(), kOperationCapsule)};
  PyErr_Clear();
  if (mlirOperationIsNull(op))
    throw NativeError(std::string("unsupported capsule '") +
                      (name ? name : "?") +
                      "': pass an iree.compiler.ir Module or Operation");
  if (opName(op) != "builtin.module")
    throw NativeError("expected a builtin.module, got " +
                      std::string(opName(op)));
  return op;
}

/// Runs one pass (taking ownership of it) on a module; failures raise with
/// the pass's own reason and MLIR's diagnostics.
void runPass(MlirOperation module, MlirPass pass, const std::string &reason) {
  MlirContext ctx = mlirOperationGetContext(module);
  DiagnosticCapture diags(ctx);
  MlirPassManager pm =
      mlirPassManagerCreateOnOperation(ctx, toRef("builtin.module"));
  mlirPassManagerAddOwnedPass(pm, pass);
  MlirLogicalResult ok = mlirPassManagerRunOnOp(pm, module);
  mlirPassManagerDestroy(pm);
  if (!mlirLogicalResultIsSuccess(ok)) {
    std::string msg = reason.empty() ? "pass failed" : reason;
    if (!diags.text().empty())
      msg += "\n" + diags.text();
    throw NativeError(msg);
  }
}

/// Raw bytes of a dense weight constant; None for resources (their data is
/// not reachable through the C API IREE exports) and non-float types.
py::object weightBytes(const Layer &layer) {
  if (!layer.weightIsConstant || !mlirAttributeIsADenseElements(layer.weightAttr))
    return py::none();
  MlirType elem =
      mlirShapedTypeGetElementType(mlirAttributeGetType(layer.weightAttr));
  if (!mlirTypeIsAFloat(elem))
    return py::none();
  size_t width = mlirFloatTypeGetWidth(elem) / 8;
  size_t count = mlirDenseElementsAttrIsSplat(layer.weightAttr)
                     ? 1
                     : mlirElementsAttrGetNumElements(layer.weightAttr);
  const char *data = static_cast<const char *>(
      mlirDenseElementsAttrGetRawData(layer.weightAttr));
  return py::bytes(data, count * width);
}

const char *kindName(LayerKind kind) {
  switch (kind) {
  case LayerKind::Conv:
    return "conv";
  case LayerKind::DepthwiseConv:
    return "depthwise_conv";
  case LayerKind::GroupedConv:
    return "grouped_conv";
  case LayerKind::Matmul:
    return "matmul";
  case LayerKind::BatchMatmul:
    return "batch_matmul";
  }
  return "?";
}

const char *precisionName(Precision p) { return p == Precision::FP32 ? "fp32" : "int8"; }

IntegerForm::Storage storageOf(const std::string &name) {
  if (name == "i8")
    return IntegerForm::Storage::I8;
  if (name == "u8")
    return IntegerForm::Storage::U8;
  if (name == "i16")
    return IntegerForm::Storage::I16;
  if (name == "i32")
    return IntegerForm::Storage::I32;
  throw NativeError("unknown activation storage '" + name + "' (i8, u8, i16 or i32)");
}

IntegerForm::Contraction contractionOf(const std::string &name) {
  if (name == "named")
    return IntegerForm::Contraction::Named;
  if (name == "channels_last")
    return IntegerForm::Contraction::ChannelsLast;
  if (name == "im2col")
    return IntegerForm::Contraction::Im2col;
  throw NativeError("unknown contraction form '" + name + "' (named, channels_last or im2col)");
}

py::list stepList(const Layer &layer) {
  py::list steps;
  for (const WeightStep &s : layer.weightSteps)
    steps.append(py::make_tuple(
        s.kind == WeightStep::Kind::Transpose ? "transpose" : "reshape", s.value));
  return steps;
}

} // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "quantune-iree native passes over IREE's MLIR C API";
  m.attr("IREE_COMPILER_VERSION") = QUANTUNE_IREE_COMPILER_VERSION;
  static py::exception<NativeError> nativeError(m, "NativeError");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const NativeError &e) {
      PyErr_SetString(nativeError.ptr(), e.what());
    }
  });

  py::class_<Layer>(m, "Layer")
      .def_readonly("id", &Layer::id)
      .def_readonly("node", &Layer::node)
      .def_property_readonly("kind", [](const Layer &l) { return kindName(l.kind); })
      .def_readonly("op_name", &Layer::opName)
      .def_readonly("element_type", &Layer::elementType)
      .def_property_readonly("precision",
                             [](const Layer &l) { return precisionName(l.precision); })
      .def_readonly("weight_channel_dims", &Layer::weightChannelDims)
      .def_readonly("output_channel_dims", &Layer::outputChannelDims)
      .def_readonly("input_shape", &Layer::inputShape)
      .def_readonly("weight_shape", &Layer::weightShape)
      .def_readonly("output_shape", &Layer::outputShape)
      .def_readonly("weight_is_constant", &Layer::weightIsConstant)
      .def_readonly("weight_const_shape", &Layer::weightConstShape)
      .def_property_readonly("weight_steps", &stepList)
      .def("weight_bytes", &weightBytes,
           "Raw bytes of the weight constant, or None when not readable");

  py::class_<TapEntry>(m, "TapEntry")
      .def_readonly("layer_id", &TapEntry::layerId)
      .def_readonly("input_result", &TapEntry::inputResult)
      .def_readonly("output_result", &TapEntry::outputResult)
      .def_readonly("weight_result", &TapEntry::weightResult);
  py::class_<TapResult>(m, "TapResult")
      .def_readonly("function", &TapResult::function)
      .def_readonly("num_original_results", &TapResult::numOriginalResults)
      .def_readonly("num_taps", &TapResult::numTaps)
      .def_readonly("entries", &TapResult::entries);

  m.def(
      "layer_table",
      [](const py::object &module) { return collectLayers(toModuleOp(module)); },
      py::arg("module"),
      "Quantizable layers of a module, in program order.");

  m.def(
      "insert_taps",
      [](const py::object &module, std::optional<std::vector<int64_t>> ids) {
        MlirOperation op = toModuleOp(module);
        InsertTapsOptions options;
        if (ids) {
          options.allLayers = false;
          options.layerIds = *ids;
        }
        runPass(op, createInsertTapsPass(&options), options.error);
        return options.result;
      },
      py::arg("module"), py::arg("layer_ids") = py::none(),
      "Runs quantune-insert-taps: layers' inputs and outputs become results.");

  py::class_<DiagnosticCapture>(m, "DiagnosticCapture",
                                "Collects a context's diagnostics while open")
      .def(py::init([](const py::object &ctx) {
             return std::make_unique<DiagnosticCapture>(toContext(ctx));
           }),
           py::arg("context"), py::keep_alive<1, 2>())
      .def("text", &DiagnosticCapture::text)
      .def("detach", &DiagnosticCapture::detach);

  py::class_<LayerQuantization>(m, "LayerQuantization")
      .def(py::init([](int64_t id, float scale, int32_t zeroPoint,
                       std::vector<float> weightScales, const std::string &storage,
                       const std::string &contraction, bool reciprocal,
                       std::vector<float> biasCorrection, const py::bytes &weightOffsets) {
             std::string raw = weightOffsets;
             std::vector<int8_t> offsets(raw.size());
             std::memcpy(offsets.data(), raw.data(), raw.size());
             return LayerQuantization{
                 id, scale, zeroPoint, std::move(weightScales),
                 IntegerForm{storageOf(storage), contractionOf(contraction), reciprocal},
                 std::move(biasCorrection), std::move(offsets)};
           }),
           py::arg("layer_id"), py::arg("act_scale"), py::arg("act_zero_point"),
           py::arg("weight_scales"), py::arg("storage") = "i8",
           py::arg("contraction") = "named", py::arg("reciprocal") = false,
           py::arg("bias_correction") = std::vector<float>{},
           py::arg("weight_offsets") = py::bytes())
      .def_readonly("layer_id", &LayerQuantization::layerId)
      .def_readonly("act_scale", &LayerQuantization::actScale)
      .def_readonly("act_zero_point", &LayerQuantization::actZeroPoint)
      .def_readonly("weight_scales", &LayerQuantization::weightScales)
      .def_readonly("bias_correction", &LayerQuantization::biasCorrection);

  m.def(
      "quantize_layers",
      [](const py::object &module, std::vector<LayerQuantization> layers) {
        MlirOperation op = toModuleOp(module);
        QuantizeOptions options;
        options.layers = std::move(layers);
        runPass(op, createQuantizeLayersPass(&options), options.error);
      },
      py::arg("module"), py::arg("layers"),
      "Runs quantune-quantize-layers: the listed layers become i8 x i8 -> i32 compute.");

  m.def(
      "channels_last",
      [](const py::object &module) {
        MlirOperation op = toModuleOp(module);
        ChannelsLastOptions options;
        runPass(op, createChannelsLastPass(&options), options.error);
        return options.rewritten;
      },
      py::arg("module"),
      "Runs quantune-channels-last; returns how many convs it rewrote.");

  m.def(
      "verify",
      [](const py::object &module) {
        MlirOperation op = toModuleOp(module);
        DiagnosticCapture diags(mlirOperationGetContext(op));
        if (!mlirOperationVerify(op))
          throw NativeError("module does not verify\n" + diags.text());
      },
      py::arg("module"), "Verifies a module; raises NativeError with diagnostics.");
}
