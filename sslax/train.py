"""The shared trainer: one loop for every method and modality (DESIGN.md, "The one path")."""
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax import checkpoint
from sslax import metrics as metrics_lib
from sslax import methods
from sslax import optim
from sslax import sharding
from sslax import validate
from sslax.data import pipeline
from sslax.evaluators import suite
from sslax.state import TrainState


def make_init(method: methods.Method, tx: optax.GradientTransformation, sample_batch,
              seed: int):
  """init(): the state at step 0, a pure function of the seed."""
  def init() -> TrainState:
    root = jax.random.PRNGKey(seed)
    init_key, train_key = jax.random.split(root)
    batch = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sample_batch)
    params, model_state, extra = method.init(init_key, batch)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      model_state=model_state, extra=extra, rng=train_key)
  return init


def make_train_step(method: methods.Method, tx: optax.GradientTransformation, lr_schedule):
  def train_step(state: TrainState, batch):
    step_key = jax.random.fold_in(state.rng, state.step)
    def loss_fn(params):
      return method.loss(params, state.model_state, state.extra, batch, step_key)
    (loss, (model_state, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    extra = method.update_extra(state.extra, params, state.step)
    metrics = {**metrics, 'loss': loss, 'learning_rate': lr_schedule(state.step),
               'grad_norm': optax.global_norm(grads), 'param_norm': optax.global_norm(params)}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state, extra=extra)
    return new_state, metrics
  return train_step


def sample_batch(config: ml_collections.ConfigDict) -> dict[str, jax.ShapeDtypeStruct]:
  """Abstract global batch shaped like the training data (read from its first record)."""
  d = config.data
  record = pipeline.first_record(d.source, d.train_split, data_dir=d.data_dir or None,
                                 transform=pipeline.record_transform(d))
  return {k: jax.ShapeDtypeStruct((config.batch_size, *v.shape), v.dtype)
          for k, v in record.items()}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Pretrains (or resumes) in `workdir`, then evaluates; returns results.json's content."""
  # ---- Check the config before compiling or building anything. ----------------------------
  validate.check(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  is_main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, 'config.json')
  resolved = json.loads(config.to_json_best_effort())
  previous = None
  if os.path.exists(config_path):
    with open(config_path) as f:
      previous = json.load(f)

  # ---- Mesh, method, optimiser, state shapes and shardings. --------------------------------
  mesh = sharding.make_mesh(config.mesh)
  method = methods.get(config.method)(config)
  tx, lr_schedule = optim.make(config)
  init_fn = make_init(method, tx, sample_batch(config), config.seed)
  abstract_state = jax.eval_shape(init_fn)
  state_sharding = sharding.state_shardings(abstract_state, mesh)
  batch_sharding = sharding.batch_sharding(mesh)

  # ---- Restore or initialise. -------------------------------------------------------------
  ckpt = checkpoint.Manager(os.path.join(workdir, 'checkpoints'),
                            max_to_keep=config.checkpoint.max_to_keep)
  init_jit = jax.jit(init_fn, out_shardings=state_sharding)
  if ckpt.latest_step() is not None:
    changed = changed_keys(previous or {}, resolved)
    problems = ckpt.mismatches(abstract_state)
    if problems:
      ckpt.close()
      raise ValueError(
          f'{ckpt.directory} holds a checkpoint that does not fit this config (config keys '
          f'changed since it was written: {", ".join(changed) or "none recorded"}; first '
          f'differences: {"; ".join(problems[:3])}). Use a new --workdir, or undo those '
          'changes to resume.')
    state, meta = ckpt.restore(abstract_state, state_sharding)
    if is_main:
      print(f"Resuming from step {meta['step']} ({ckpt.directory})."
            + (f" Changed config keys: {', '.join(changed)}." if changed else ''))
  else:
    state = init_jit()
  start = int(state.step)
  if is_main:   # Written once the config is known to fit the workdir's checkpoint.
    with open(config_path, 'w') as f:
      json.dump(resolved, f, indent=2, sort_keys=True)

  # ---- Train. ------------------------------------------------------------------------------
  step_fn = jax.jit(make_train_step(method, tx, lr_schedule), donate_argnums=0,
                    in_shardings=(state_sharding, batch_sharding),
                    out_shardings=(state_sharding, sharding.replicated(mesh)))
  writer = metrics_lib.Writer(workdir, total_steps=config.total_steps, initial_step=start,
                              progress=config.progress_bar)
  timer = metrics_lib.Throughput(config.batch_size)
  meta = lambda step: {'step': step, 'data_position': step, 'seed': config.seed}
  try:
    if start < config.total_steps:
      batches = pipeline.make_train(config, mesh, start_step=start)
      timer.reset(start)
      for step in range(start + 1, config.total_steps + 1):
        state, step_metrics = step_fn(state, next(batches))
        writer.advance(1)
        save_due = step % config.checkpoint.every_steps == 0 or step == config.total_steps
        if save_due or step % config.log_every == 0:
          # Checked before every save, so a diverged state never replaces a good checkpoint.
          scalars = jax.device_get(step_metrics)
          if not np.isfinite(scalars['loss']):
            raise FloatingPointError(
                f'Loss is {scalars["loss"]} at step {step}; stopping without saving this state '
                f'(last checkpoint: step {ckpt.latest_step()}). Lower config.optim.learning_rate?')
          writer.write(step, {**scalars, **timer.measure(step)})
        if save_due:
          ckpt.save(step, state, meta(step))
  finally:
    # Also on errors and interrupts: an async save in flight must land, not be torn.
    ckpt.close()

  # ---- Evaluate the pretrained encoder and its random initialisation. ----------------------
  initial = init_jit()
  results = suite.run(config, method.embed, {
      '': (state.params, state.model_state),
      'random_init/': (initial.params, initial.model_state)}, mesh)
  results['step'] = int(state.step)
  writer.write(int(state.step), {f'eval/{k}': v for k, v in results.items() if k != 'step'})
  writer.close()
  if is_main:
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
    print(format_results(results))
  return results


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = '') -> list[str]:
  """Dotted keys whose values differ between two resolved configs (as JSON dicts)."""
  keys = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      keys += changed_keys(a, b, f'{prefix}{k}.')
    elif a != b:
      keys.append(f'{prefix}{k}')
  return keys


def format_results(results: dict[str, Any]) -> str:
  """A short pretrained-vs-random-init table for the terminal."""
  rows = [('metric', 'pretrained', 'random init')]
  for key in sorted(k for k in results if '/' in k and not k.startswith('random_init/')):
    if key.endswith('/accuracy'):
      rows.append((key, f'{results[key]:.4f}', f"{results.get('random_init/' + key, float('nan')):.4f}"))
  widths = [max(len(r[i]) for r in rows) for i in range(3)]
  return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)
