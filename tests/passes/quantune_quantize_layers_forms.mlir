// Driven by tests/ir/test_passes.py like quantune_quantize_layers.mlir (activation scale 0.5, zero
// point 3, weight scale 0.25), in the channels-last forms with the reciprocal quantize: 1x1 convs
// with u8 activations, other convs and depthwise convs with i16 activations.

// A 3x3 conv in i16: the quantize reads NCHW and writes NHWC (the transpose folded into its
// maps), by the corrected reciprocal (rcp = 2, magic 1.5 * 2^23, minus 1.5 * 2^23 - zp =
// 12582909), padded NHWC with zp, an NHWC generic i16 x i8 -> i32 on the HWCF weight, and the
// dequantize reads NHWC and writes NCHW.
// CHECK-LABEL: util.func public @conv(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<4> : tensor<3x3x1x2xi8>
// CHECK-DAG: %[[OFF:.*]] = arith.constant dense<100> : tensor<2xi32>
// CHECK-DAG: %[[RCP:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-DAG: %[[MZP:.*]] = arith.constant 0x4B3FFFFD : f32
// CHECK-DAG: %[[ZP:.*]] = arith.constant 3 : i16
// CHECK-NOT: linalg.transpose
// CHECK: %[[Q:.*]] = linalg.generic {indexing_maps = [#[[NCHW:.*]], #{{.*}}], {{.*}} ins(%arg0 : tensor<1x1x4x4xf32>) outs(%{{.*}} : tensor<1x4x4x1xi16>) attrs = {quantune.role = "quantize"}
// CHECK: arith.mulf %{{.*}}, %[[RCP]]
// CHECK-NEXT: arith.negf
// CHECK-NEXT: math.fma
// CHECK-NEXT: math.fma
// CHECK-NEXT: arith.addf
// CHECK-NEXT: arith.subf %{{.*}}, %[[MZP]]
// CHECK-NOT: arith.divf
// CHECK: arith.fptosi %{{.*}} : f32 to i16
// CHECK: %[[P:.*]] = tensor.pad %[[Q]] low[0, 1, 1, 0] high[0, 1, 1, 0]
// CHECK: tensor.yield %[[ZP]] : i16
// CHECK: %[[ACC:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[W]] : tensor<1x6x6x1xi16>, tensor<3x3x1x2xi8>) outs(%{{.*}} : tensor<1x4x4x2xi32>) attrs = {quantune.layer = 0 : i64, quantune.op = "linalg.conv_2d_nchw_fchw"}
// CHECK: arith.extsi %{{.*}} : i16 to i32
// CHECK: %[[OUT:.*]] = linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}, #[[NCHW]]], {{.*}} ins(%[[ACC]], %{{.*}}, %[[OFF]] : tensor<1x4x4x2xi32>, tensor<2xf32>, tensor<2xi32>) outs(%{{.*}} : tensor<1x2x4x4xf32>) attrs = {quantune.role = "dequantize"}
// CHECK-NOT: linalg.transpose
// CHECK: util.return %[[OUT]]
util.func public @conv(%arg0: tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %z = arith.constant 0.0 : f32 loc("c")
  %w = arith.constant dense<1.0> : tensor<2x1x3x3xf32> loc("c")
  %b = arith.constant dense<1.0> : tensor<2xf32> loc("c")
  %p = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x1x4x4xf32> to tensor<1x1x6x6xf32> loc("c")
  %e = tensor.empty() : tensor<1x2x4x4xf32> loc("c")
  %bb = linalg.broadcast ins(%b : tensor<2xf32>) outs(%e : tensor<1x2x4x4xf32>) dimensions = [0, 2, 3] loc("c")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%p, %w : tensor<1x1x6x6xf32>, tensor<2x1x3x3xf32>) outs(%bb : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> loc("c")
  util.return %c : tensor<1x2x4x4xf32>
}

// -----

// A 1x1 conv in u8: codes q + 128 (zero point 131, held in i8 bits as -125, clamped to
// [0, 255], converted through i32 and truncated), a matmul over the collapsed pixels reading them with extui,
// and the offset shifted by 128 * sum(q_w): 131 * 4 * 4 - 0 = 2096.
// CHECK-LABEL: util.func public @pointwise(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<4> : tensor<4x3xi8>
// CHECK-DAG: %[[OFF:.*]] = arith.constant dense<2096> : tensor<3xi32>
// CHECK-DAG: arith.constant 2.550000e+02 : f32
// CHECK: %[[Q:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<1x2x2x4xi8>) attrs = {quantune.role = "quantize"}
// CHECK: arith.fptosi %{{.*}} : f32 to i32
// CHECK-NEXT: arith.trunci %{{.*}} : i32 to i8
// CHECK: %[[COL:.*]] = tensor.collapse_shape %[[Q]] {{\[}}[0, 1, 2], [3]] : tensor<1x2x2x4xi8> into tensor<4x4xi8>
// CHECK: %[[MM:.*]] = linalg.generic {{.*}} ins(%[[COL]], %[[W]] : tensor<4x4xi8>, tensor<4x3xi8>) outs(%{{.*}} : tensor<4x3xi32>) attrs = {quantune.layer = 0 : i64, quantune.op = "linalg.conv_2d_nchw_fchw"}
// CHECK: arith.extui %{{.*}} : i8 to i32
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: %[[ACC:.*]] = tensor.expand_shape %[[MM]] {{\[}}[0, 1, 2], [3]] output_shape [1, 2, 2, 3] : tensor<4x3xi32> into tensor<1x2x2x3xi32>
// CHECK: linalg.generic {{.*}} ins(%[[ACC]], %{{.*}}, %[[OFF]] : {{.*}} outs(%{{.*}} : tensor<1x3x2x2xf32>)
util.func public @pointwise(%arg0: tensor<1x4x2x2xf32>) -> tensor<1x3x2x2xf32> {
  %z = arith.constant 0.0 : f32 loc("p")
  %w = arith.constant dense<1.0> : tensor<3x4x1x1xf32> loc("p")
  %e = tensor.empty() : tensor<1x3x2x2xf32> loc("p")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("p")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%arg0, %w : tensor<1x4x2x2xf32>, tensor<3x4x1x1xf32>) outs(%f : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("p")
  util.return %c : tensor<1x3x2x2xf32>
}

// -----

// A stride-2 depthwise conv in i16: the NHWC generic reads the HWC weight, with the stride in
// its input map.
// CHECK-LABEL: util.func public @depthwise(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<4> : tensor<3x3x2xi8>
// CHECK: %[[ACC:.*]] = linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%{{.*}}, %[[W]] : tensor<1x6x6x2xi16>, tensor<3x3x2xi8>) outs(%{{.*}} : tensor<1x2x2x2xi32>) attrs = {quantune.layer = 0 : i64, quantune.op = "linalg.depthwise_conv_2d_nchw_chw"}
// CHECK: util.return
util.func public @depthwise(%arg0: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
  %z = arith.constant 0.0 : f32 loc("d")
  %w = arith.constant dense<1.0> : tensor<2x3x3xf32> loc("d")
  %p = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x2x4x4xf32> to tensor<1x2x6x6xf32> loc("d")
  %e = tensor.empty() : tensor<1x2x2x2xf32> loc("d")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> loc("d")
  %c = linalg.depthwise_conv_2d_nchw_chw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>} ins(%p, %w : tensor<1x2x6x6xf32>, tensor<2x3x3xf32>) outs(%f : tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> loc("d")
  util.return %c : tensor<1x2x2x2xf32>
}

// -----

// u8 needs a channels-last form: a Gemm asked for u8 is refused with one line.
// CHECK-LABEL: // error: quantune-quantize-layers failed: layer 0 ('g'): u8 activations need the channels-last or im2col form
func.func @gemm_u8(%arg0: tensor<2x3xf32>) -> tensor<2x4xf32> {
  %w = arith.constant dense<0.5> : tensor<3x4xf32> loc("g")
  %z = arith.constant 0.0 : f32 loc("g")
  %e = tensor.empty() : tensor<2x4xf32> loc("g")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<2x4xf32>) -> tensor<2x4xf32> loc("g")
  %m = linalg.matmul ins(%arg0, %w : tensor<2x3xf32>, tensor<3x4xf32>) outs(%f : tensor<2x4xf32>) -> tensor<2x4xf32> loc("g")
  return %m : tensor<2x4xf32>
}

// -----

// A stride-2 3x3 conv through im2col in u8 (node "i"): one stride-2 slice of the padded NHWC
// codes per kernel tap, inserted at (kh, kw) of [1, Ho, Wo, KH, KW, C] patches, collapsed to
// [Ho*Wo, KH*KW*C] and padded with zero rows to a multiple of 8, times the collapsed HWCF
// weight [KH*KW*C, F] with extui/extsi, the padded rows sliced off; offset 131 * 18 * 4 = 9432.
// CHECK-LABEL: util.func public @im2col(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<4> : tensor<18x3xi8>
// CHECK-DAG: %[[OFF:.*]] = arith.constant dense<9432> : tensor<3xi32>
// CHECK: %[[P:.*]] = tensor.pad %{{.*}} low[0, 1, 1, 0] high[0, 1, 1, 0]
// CHECK: %[[S0:.*]] = tensor.extract_slice %[[P]][0, 0, 0, 0] [1, 2, 2, 2] [1, 2, 2, 1] : tensor<1x6x6x2xi8> to tensor<1x2x2x2xi8>
// CHECK: tensor.insert_slice %[[S0]] into %{{.*}}[0, 0, 0, 0, 0, 0] [1, 2, 2, 1, 1, 2] [1, 1, 1, 1, 1, 1] : tensor<1x2x2x2xi8> into tensor<1x2x2x3x3x2xi8>
// CHECK: %[[S8:.*]] = tensor.extract_slice %[[P]][0, 2, 2, 0] [1, 2, 2, 2] [1, 2, 2, 1]
// CHECK: %[[PATCH:.*]] = tensor.insert_slice %[[S8]] into %{{.*}}[0, 0, 0, 2, 2, 0]
// CHECK: %[[COL:.*]] = tensor.collapse_shape %[[PATCH]] {{\[}}[0, 1, 2], [3, 4, 5]] : tensor<1x2x2x3x3x2xi8> into tensor<4x18xi8>
// CHECK: %[[COLP:.*]] = tensor.pad %[[COL]] low[0, 0] high[4, 0]
// CHECK: tensor<4x18xi8> to tensor<8x18xi8>
// CHECK: %[[MM:.*]] = linalg.generic {{.*}} ins(%[[COLP]], %[[W]] : tensor<8x18xi8>, tensor<18x3xi8>) outs(%{{.*}} : tensor<8x3xi32>) attrs = {quantune.layer = 0 : i64, quantune.op = "linalg.conv_2d_nchw_fchw"}
// CHECK: arith.extui
// CHECK: %[[ROWS:.*]] = tensor.extract_slice %[[MM]][0, 0] [4, 3] [1, 1] : tensor<8x3xi32> to tensor<4x3xi32>
// CHECK: tensor.expand_shape %[[ROWS]] {{\[}}[0, 1, 2], [3]] output_shape [1, 2, 2, 3]
// CHECK: util.return
util.func public @im2col(%arg0: tensor<1x2x4x4xf32>) -> tensor<1x3x2x2xf32> {
  %z = arith.constant 0.0 : f32 loc("i")
  %w = arith.constant dense<1.0> : tensor<3x2x3x3xf32> loc("i")
  %p = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x2x4x4xf32> to tensor<1x2x6x6xf32> loc("i")
  %e = tensor.empty() : tensor<1x3x2x2xf32> loc("i")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("i")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>} ins(%p, %w : tensor<1x2x6x6xf32>, tensor<3x2x3x3xf32>) outs(%f : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("i")
  util.return %c : tensor<1x3x2x2xf32>
}

// -----

// Vulkan's form (node "v"): i32 storage, the named conv on i32 x i32 -> i32 and an i32 weight
// constant, so no i8 is ever loaded (IREE 3.13's SPIR-V drops the sign extension of packed i8);
// quantized by division, padded with the zero point in i32.
// CHECK-LABEL: util.func public @vulkan_i32(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<4> : tensor<3x2x3x3xi32>
// CHECK: %[[Q:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<1x2x4x4xi32>) attrs = {quantune.role = "quantize"}
// CHECK: arith.divf
// CHECK: arith.fptosi %{{.*}} : f32 to i32
// CHECK: %[[P:.*]] = tensor.pad %[[Q]] low[0, 0, 1, 1] high[0, 0, 1, 1]
// CHECK: tensor.yield %{{.*}} : i32
// CHECK: linalg.conv_2d_nchw_fchw {{.*}} ins(%[[P]], %[[W]] : tensor<1x2x6x6xi32>, tensor<3x2x3x3xi32>) outs(%{{.*}} : tensor<1x3x2x2xi32>)
// CHECK-NOT: i8
// CHECK: util.return
util.func public @vulkan_i32(%arg0: tensor<1x2x4x4xf32>) -> tensor<1x3x2x2xf32> {
  %z = arith.constant 0.0 : f32 loc("v")
  %w = arith.constant dense<1.0> : tensor<3x2x3x3xf32> loc("v")
  %p = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%i: index, %j: index, %k: index, %l: index):
    tensor.yield %z : f32
  } : tensor<1x2x4x4xf32> to tensor<1x2x6x6xf32> loc("v")
  %e = tensor.empty() : tensor<1x3x2x2xf32> loc("v")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("v")
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>} ins(%p, %w : tensor<1x2x6x6xf32>, tensor<3x2x3x3xf32>) outs(%f : tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32> loc("v")
  util.return %c : tensor<1x3x2x2xf32>
}
