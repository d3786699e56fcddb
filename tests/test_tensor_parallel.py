"""Tensor parallelism on the mesh's 'model' axis: the Transformer's logical axis names put
attention heads and MLP hidden units over 'model' (Megatron-style), with the same numbers as
pure data parallelism."""
import jax
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import fetch
from sslax.data import readers
from tests.test_text_methods import data_dir, text_config  # noqa: F401 (fixture)

MIN_SIZE = 256   # the smoke model is tiny; production default is config.fsdp_min_size
# 4 heads of width 8, so the 'model' axis of 4 divides the heads (the smoke config has 2).
HEADS = {'model.num_heads': 4}


def _setup(config):
  method = methods.get(config.method)(config)
  tx, lr = optim.make(config)
  sample = train.sample_batch(config)
  init = train.make_init(method, tx, sample, config.seed)
  abstract = jax.eval_shape(init)
  return method, init, train.make_train_step(method, tx, lr), abstract, sample


def test_transformer_weights_are_column_then_row_parallel_with_fsdp(data_dir):
  config = text_config('mlm', data_dir, **HEADS)
  method, _, _, abstract, sample = _setup(config)
  names = train.logical_axes(method, sample)
  assert names[('block0', 'mlp_in', 'kernel')] == ('embed', 'mlp')
  expected = {   # (data=1, fsdp=2, model=4): TP over 'model', the width over 'fsdp' if large
      ('attn', 'query', 'kernel'): P('fsdp', 'model', None),
      ('attn', 'value', 'bias'): P('model', None),
      ('attn', 'out', 'kernel'): P('model', None, 'fsdp'),
      ('attn', 'out', 'bias'): P(None),
      ('mlp_in', 'kernel'): P('fsdp', 'model'),
      ('mlp_in', 'bias'): P('model'),
      ('mlp_out', 'kernel'): P('model', 'fsdp'),
  }
  mesh = sharding.make_mesh({'data': 1, 'fsdp': 2, 'model': 4})
  sh = sharding.state_shardings(abstract, mesh, MIN_SIZE, names)
  block = sh.params['block0']
  for (*path, leaf), spec in expected.items():
    node = block
    for k in path:
      node = node[k]
    assert node[leaf].spec == spec, (path, leaf, node[leaf].spec)
  # Unnamed leaves keep the size rule; Adam's moments follow their parameter.
  assert sh.params['token_embed']['embedding'].spec == P('fsdp', None)   # [262, 32]
  # Adam's state wherever the optax chain puts it (gradient clipping may come first).
  adam, = [s for s in jax.tree.leaves(sh.opt_state, is_leaf=lambda x: hasattr(x, 'mu'))
           if hasattr(s, 'mu')]
  jax.tree.map(lambda m, p: np.testing.assert_equal(m.spec, p.spec), adam.mu, sh.params)
  tp = sharding.axis_fraction(abstract.params, sh.params, 'model')
  assert 0.3 < tp < 0.5, tp   # attention + MLP of the one block, not the embeddings
  assert sharding.replicated_fraction(abstract.params, sh.params) < 0.1
  layout = sharding.report(abstract.params, sh.params, mesh)
  assert "split over 'model'" in layout


def test_tensor_parallel_step_equals_data_parallel(data_dir):
  config = text_config('mlm', data_dir, **HEADS)
  method, init, step, abstract, sample = _setup(config)
  names = train.logical_axes(method, sample)
  records = readers.Records(config.data.source, 'train', data_dir=str(data_dir), in_memory=True,
                            transform=fetch.record_transform(config.data))
  local = records.take(np.arange(config.batch_size))
  tp_mesh = sharding.make_mesh({'data': 2, 'model': 4})
  outputs = []
  for mesh in (sharding.make_mesh({'data': 8}), tp_mesh):
    sh = sharding.state_shardings(abstract, mesh, config.fsdp_min_size, names)
    state = jax.jit(init, out_shardings=sh)()
    new_state, metrics = jax.jit(step, in_shardings=(sh, sharding.batch_sharding(mesh)),
                                 out_shardings=(sh, sharding.replicated(mesh)))(
                                     state, sharding.to_global(local, mesh))
    if mesh is tp_mesh:   # the big weights really are split over 'model', before and after
      for params in (state.params, new_state.params):
        kernel = params['block0']['mlp_in']['kernel']
        assert kernel.sharding.spec == P(None, 'model')
        assert {s.data.shape for s in kernel.addressable_shards} == {(32, 64 // 4)}
        query = params['block0']['attn']['query']['kernel']
        assert {s.data.shape for s in query.addressable_shards} == {(32, 1, 8)}
    outputs.append(jax.device_get((new_state.params, metrics['loss'])))
  (p_dp, l_dp), (p_tp, l_tp) = outputs
  np.testing.assert_allclose(l_tp, l_dp, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p_tp, p_dp)


def test_model_axis_without_tensor_parallel_weights_is_an_error(tmp_path):
  from tests.test_train import smoke_config   # SimCLR's ResNet has no logical names
  config = smoke_config(tmp_path / 'tfds', **{'mesh': {'data': 2, 'fsdp': 1, 'model': 4}})
  with pytest.raises(ValueError, match=r'config.mesh.model=4, but no parameter is split'):
    train.run(config, str(tmp_path / 'run'))
