"""GradCache (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup"): a contrastive loss over the whole global batch with activations held for one
micro-batch at a time.

  1. embed every micro-batch without keeping activations (no gradient);
  2. loss over all embeddings, and its gradient w.r.t. the embeddings (cheap: [M, D]);
  3. per micro-batch, recompute the forward pass and back-propagate that embedding gradient
     into the parameters; sum over micro-batches.

Every example stays a negative of every other, so the loss and gradients equal the plain
full-batch ones whenever the encoder treats examples independently (GroupNorm, LayerNorm, no
norm). With BatchNorm the statistics are per micro-batch, as with per-device BN.

The method must split its loss into `embed_inputs(batch, rng) -> inputs` (augmentation, once
over the global batch, so views match the plain run), `forward(params, model_state, extra,
inputs) -> (embeddings, model_state)` and `loss_from_embeddings(embeddings) -> (scalar,
metrics)`. Inputs and embeddings are pytrees whose leaves lead with the same M (examples or
views): SimCLR's [2N, P] projections; MoCo v3's {'online', 'target'} pair, where the target
(EMA) branch is computed under stop_gradient inside `forward`, so the back-propagation pass
recomputes it but sends it no gradient; CPC's per-example predictions, latents and frame mask.
`extra` (EMA targets) is read, never differentiated.

Drop path is not micro-batched: its random masks would differ between the two passes, so
validate.py refuses config.model.drop_path_rate > 0 with grad_accum_steps > 1.
"""
from typing import Any

import jax
import jax.numpy as jnp

from sslax import errors
from sslax import methods


def check_method(method: methods.Method, method_name: str, grad_accum_steps: int) -> None:
  if grad_accum_steps > 1 and None in (method.embed_inputs, method.forward,
                                       method.loss_from_embeddings):
    raise errors.ConfigError(
        f'config.grad_accum_steps={grad_accum_steps} needs a method that exposes embed_inputs, '
        f'forward and loss_from_embeddings; config.method={method_name!r} does not. Set '
        'config.grad_accum_steps=1 (or add the split to the method, see methods/simclr.py).')


def _chunks(tree: Any, k: int) -> Any:
  """Each leaf [M, ...] -> [k, M/k, ...] with chunk j = rows j, j+k, ...: a strided split
  keeps every chunk spread over all the devices the batch axis is sharded on."""
  def one(x):
    return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)
  return jax.tree.map(one, tree)


def _unchunk(tree: Any) -> Any:
  def one(x):
    x = jnp.swapaxes(x, 0, 1)
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
  return jax.tree.map(one, tree)


def value_and_grad(method: methods.Method, params: Any, model_state: Any, batch: Any,
                   rng: jax.Array, grad_accum_steps: int, extra: Any = None):
  """Same result structure as `jax.value_and_grad(method.loss, has_aux=True)` over params:
  ((loss, (model_state, metrics)), grads)."""
  k = grad_accum_steps
  inputs = _chunks(method.embed_inputs(batch, rng), k)

  # 1. All embeddings, no activations kept across micro-batches.
  def embed_chunk(state, chunk):
    emb, state = method.forward(params, state, extra, chunk)
    return state, emb
  _, embs = jax.lax.scan(embed_chunk, model_state, inputs)
  embs_MxD = jax.lax.stop_gradient(_unchunk(embs))

  # 2. The loss over the whole batch and its gradient w.r.t. the embeddings.
  (loss, metrics), g_embs_MxD = jax.value_and_grad(method.loss_from_embeddings, has_aux=True)(
      embs_MxD)
  g_embs = _chunks(g_embs_MxD, k)

  # 3. Back-propagate each micro-batch's embedding gradient (a VJP), summing into params.
  def backprop_chunk(carry, chunk_and_grad):
    grads, state = carry
    chunk, g_emb = chunk_and_grad
    (_, new_state), vjp = jax.vjp(lambda p: method.forward(p, state, extra, chunk), params)
    (g,) = vjp((g_emb, jax.tree.map(jnp.zeros_like, new_state)))
    return (jax.tree.map(jnp.add, grads, g), new_state), None
  zeros = jax.tree.map(jnp.zeros_like, params)
  (grads, model_state), _ = jax.lax.scan(backprop_chunk, (zeros, model_state), (inputs, g_embs))
  return (loss, (model_state, metrics)), grads
