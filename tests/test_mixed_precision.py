"""bfloat16 compute (config.model.dtype) keeps float32 parameters, optimiser state and loss."""
import jax
import jax.numpy as jnp
import numpy as np

from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import train
from sslax.data import readers
from tests.test_train import data_dir, smoke_config  # noqa: F401 (fixture)


def test_bfloat16_compute_keeps_float32_state_and_a_close_loss(data_dir):
  records = readers.Records('builtin:digits', 'train', data_dir=str(data_dir), in_memory=True)
  outputs = {}
  for dtype in ('float32', 'bfloat16'):
    config = smoke_config(data_dir, **{'model.dtype': dtype})
    method = methods.get(config.method)(config)
    tx, lr = optim.make(config)
    init = train.make_init(method, tx, train.sample_batch(config), config.seed)
    mesh = sharding.make_mesh(config.mesh)
    state, metrics = jax.jit(train.make_train_step(method, tx, lr))(
        jax.jit(init)(), sharding.to_global(records.take(np.arange(config.batch_size)), mesh))
    outputs[dtype] = (state, metrics['loss'])
    assert jax.eval_shape(method.embed, state.params, state.model_state,
                          sharding.to_global(records.take(np.arange(8)), mesh)).dtype == jnp.float32
  state, loss = outputs['bfloat16']
  for part in (state.params, state.opt_state, state.model_state):
    assert {x.dtype for x in jax.tree.leaves(part) if jnp.issubdtype(x.dtype, jnp.floating)} == {
        jnp.dtype(jnp.float32)}
  assert loss.dtype == jnp.float32
  # bfloat16 has an 8-bit mantissa: close to, not equal to, the float32 loss.
  np.testing.assert_allclose(loss, outputs['float32'][1], rtol=2e-2)
  assert float(loss) != float(outputs['float32'][1])   # bfloat16 really was used
