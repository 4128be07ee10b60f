// Driven by tests/test_passes.py: every layer is quantized with activation scale 0.5
// (0x3F000000), zero point 3 and one weight scale 0.25 for all channels.

// A conv with its bias as the broadcast init and its own pad: quantize before the pad, pad
// with the zero point in i8, i8 x i8 -> i32 conv, bias folded into the int32 offset.
// offset[c] = zp * sum(q_w[c]) - rint(b[c] / (0.5 * 0.25)) = 3 * 9 * 4 - 1 * 8 = 100.
// CHECK-LABEL: util.func public @conv(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<4> : tensor<2x1x3x3xi8>
// CHECK-DAG: %[[S:.*]] = arith.constant dense<1.250000e-01> : tensor<2xf32>
// CHECK-DAG: %[[OFF:.*]] = arith.constant dense<100> : tensor<2xi32>
// CHECK-DAG: %[[SX:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG: %[[ZP8:.*]] = arith.constant 3 : i8
// CHECK: %[[Q:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<1x1x4x4xf32>) outs(%{{.*}} : tensor<1x1x4x4xi8>) attrs = {quantune.role = "quantize"}
// CHECK: arith.divf %{{.*}}, %[[SX]] : f32
// CHECK-NEXT: math.roundeven
// CHECK: arith.fptosi %{{.*}} : f32 to i8
// CHECK: %[[P:.*]] = tensor.pad %[[Q]] low[0, 0, 1, 1] high[0, 0, 1, 1]
// CHECK: tensor.yield %[[ZP8]] : i8
// CHECK: %[[ACC:.*]] = linalg.conv_2d_nchw_fchw {quantune.layer = 0 : i64, {{.*}}} ins(%[[P]], %[[W]] : tensor<1x1x6x6xi8>, tensor<2x1x3x3xi8>) outs(%{{.*}} : tensor<1x2x4x4xi32>)
// CHECK: %[[OUT:.*]] = linalg.generic {{.*}} ins(%[[ACC]], %[[S]], %[[OFF]] : tensor<1x2x4x4xi32>, tensor<2xf32>, tensor<2xi32>) {{.*}} attrs = {quantune.role = "dequantize"}
// CHECK: arith.subi
// CHECK-NEXT: arith.sitofp
// CHECK-NEXT: arith.mulf
// CHECK-NEXT: linalg.yield
// CHECK-NOT: linalg.conv_2d_nchw_fchw {{.*}}f32
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

// A Gemm: transposed constant weight, zero init, and the node's bias add folded away.
// q_w = rint(0.5 / 0.25) = 2; offset = 3 * 2 * 3 - rint(0.75 / 0.125) = 18 - 6 = 12.
// CHECK-LABEL: func.func @gemm(
// CHECK-DAG: %[[W:.*]] = arith.constant dense<2> : tensor<3x4xi8>
// CHECK-DAG: %[[OFF:.*]] = arith.constant dense<12> : tensor<4xi32>
// CHECK: %[[ACC:.*]] = linalg.matmul {quantune.layer = 0 : i64, quantune.op = "linalg.matmul"} ins(%{{.*}}, %[[W]] : tensor<2x3xi8>, tensor<3x4xi8>) outs(%{{.*}} : tensor<2x4xi32>)
// CHECK: %[[OUT:.*]] = linalg.generic {{.*}} ins(%[[ACC]], %{{.*}}, %[[OFF]] :
// CHECK-NOT: arith.addf
// CHECK-NOT: linalg.transpose
// CHECK: return %[[OUT]]
func.func @gemm(%arg0: tensor<2x3xf32>) -> tensor<2x4xf32> {
  %wt = arith.constant dense<0.5> : tensor<4x3xf32> loc("g")
  %b = arith.constant dense<0.75> : tensor<4xf32> loc("g")
  %z = arith.constant 0.0 : f32 loc("g")
  %et = tensor.empty() : tensor<3x4xf32> loc("g")
  %w = linalg.transpose ins(%wt : tensor<4x3xf32>) outs(%et : tensor<3x4xf32>) permutation = [1, 0] loc("g")
  %e = tensor.empty() : tensor<2x4xf32> loc("g")
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<2x4xf32>) -> tensor<2x4xf32> loc("g")
  %m = linalg.matmul ins(%arg0, %w : tensor<2x3xf32>, tensor<3x4xf32>) outs(%f : tensor<2x4xf32>) -> tensor<2x4xf32> loc("g")
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%m, %b : tensor<2x4xf32>, tensor<4xf32>) outs(%e : tensor<2x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<2x4xf32> loc("g")
  return %r : tensor<2x4xf32>
}

// -----

// Integer matmuls are not layers: nothing to quantize, the module is unchanged.
// CHECK-LABEL: func.func @int_mm(
// CHECK-NOT: quantune
// CHECK: linalg.matmul ins(%arg0, %arg1 : tensor<2x4xi8>, tensor<4x3xi8>) outs(%{{.*}} : tensor<2x3xi32>)
func.func @int_mm(%a: tensor<2x4xi8>, %b: tensor<4x3xi8>) -> tensor<2x3xi32> {
  %z = arith.constant 0 : i32
  %e = tensor.empty() : tensor<2x3xi32>
  %f = linalg.fill ins(%z : i32) outs(%e : tensor<2x3xi32>) -> tensor<2x3xi32>
  %0 = linalg.matmul ins(%a, %b : tensor<2x4xi8>, tensor<4x3xi8>) outs(%f : tensor<2x3xi32>) -> tensor<2x3xi32>
  return %0 : tensor<2x3xi32>
}
