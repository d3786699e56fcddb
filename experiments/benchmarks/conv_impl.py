"""SimCLR ResNet-18 train step with each config.model.conv_impl (xla, im2col, wgrad_gemm).

  python experiments/benchmarks/conv_impl.py [--batch_size 16] [--repeats 5] [--layers]
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python experiments/benchmarks/conv_impl.py
      (the same with XLA's YNNPACK convolutions off: Eigen's)

Builds sslax's real SimCLR train step (workloads.py's ResNet-18) once per conv_impl and
times them alternately (round-robin, `--repeats` rounds), so load from other processes on a
shared CPU hits every variant alike; prints the median step time of each. --layers also
times forward + both gradients of each distinct ResNet-18 3x3 convolution shape alone, on
`--batch_size` images, with each of IMPLS.
"""
import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
import bench_lib  # noqa: E402
import workloads  # noqa: E402
from sslax.models import resnet  # noqa: E402

# (spatial size, C_in, C_out, stride) of ResNet-18's 3x3 convolutions at 32x32 input.
LAYERS = ((32, 64, 64, 1), (32, 64, 128, 2), (16, 128, 128, 1), (16, 128, 256, 2),
          (8, 256, 256, 1), (8, 256, 512, 2), (4, 512, 512, 1))


def steps(batch_size: int):
  out = {}
  for impl in IMPLS:
    built = workloads.build('simclr_resnet18', batch_size, conv_impl=impl)
    compiled = jax.jit(built.train_step()).lower(built.state, built.batch).compile()
    out[impl] = (compiled, built.state, built.batch, bench_lib.cost_flops(compiled))
  return out


# 'auto' is one of the others, chosen by backend.
IMPLS = tuple(i for i in resnet.CONV_IMPLS if i != 'auto')


def layer_fns(batch_size: int):
  out = {}
  for hw, cin, cout, stride in LAYERS:
    x = jax.random.normal(jax.random.PRNGKey(0), (batch_size, hw, hw, cin))
    for impl in IMPLS:
      conv = resnet._conv_cls(impl)(cout, (3, 3), stride, use_bias=False)  # pylint: disable=protected-access
      params = conv.init(jax.random.PRNGKey(1), x)
      grad = jax.jit(jax.grad(lambda p, x, c=conv: jnp.sum(c.apply(p, x) ** 2), argnums=(0, 1)))
      out[(hw, cin, cout, stride, impl)] = (lambda g=grad, p=params, x=x:
                                            jax.block_until_ready(g(p, x)))
  return out


def round_robin(fns: dict, repeats: int) -> dict:
  for fn in fns.values():
    fn()
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - start)
  return {k: statistics.median(t) for k, t in times.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_size', type=int, default=16)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--layers', action='store_true')
  args = parser.parse_args()
  print(f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}, batch {args.batch_size}')
  built = steps(args.batch_size)
  fns = {impl: (lambda c=c, s=s, b=b: jax.block_until_ready(c(s, b)[1]))
         for impl, (c, s, b, _) in built.items()}
  median = round_robin(fns, args.repeats)
  for impl, t in median.items():
    flops = built[impl][3]
    print(f'  train step, conv_impl={impl:7s}: {t * 1e3:7.0f} ms  '
          f'({flops / 1e9:.1f} GFLOP, {flops / t / 1e9:.1f} GFLOP/s)')
  for impl in IMPLS[1:]:
    print(f'  {impl} / xla: {median[impl] / median["xla"]:.2f}')
  if args.layers:
    median = round_robin(layer_fns(args.batch_size), args.repeats)
    for layer in LAYERS:
      ms = {impl: median[(*layer, impl)] * 1e3 for impl in IMPLS}
      print('  conv {}x{} {}->{} /{}: '.format(layer[0], *layer) +
            ', '.join(f'{impl} {t:6.1f} ms' for impl, t in ms.items()))


if __name__ == '__main__':
  main()
