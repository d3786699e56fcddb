"""The shared trainer: one loop for every method and modality (DESIGN.md, "The one path")."""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax import checkpoint
from sslax import metrics as metrics_lib
from sslax import methods
from sslax import optim
from sslax import reports
from sslax import sharding
from sslax import validate
from sslax.data import pipeline
from sslax.data import sources
from sslax.evaluators import online_probe
from sslax.evaluators import suite
from sslax.state import TrainState


def make_init(method: methods.Method, tx: optax.GradientTransformation, sample_batch,
              seed: int, probe: online_probe.OnlineProbe | None = None):
  """init(): the state at step 0, a pure function of the seed."""
  def init() -> TrainState:
    root = jax.random.PRNGKey(seed)
    init_key, train_key = jax.random.split(root)
    batch = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sample_batch)
    params, model_state, extra = method.init(init_key, batch)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      model_state=model_state, extra=extra, rng=train_key,
                      probe=probe.init(params, model_state, batch) if probe else None)
  return init


def make_train_step(method: methods.Method, tx: optax.GradientTransformation, lr_schedule,
                    probe: online_probe.OnlineProbe | None = None):
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
    if probe:
      # On the features the loss just saw (pre-update params), as SimCLR and solo-learn do.
      probe_state, probe_metrics = probe.update(state.probe, state.params, state.model_state,
                                                batch)
      new_state = new_state.replace(probe=probe_state)
      metrics = {**metrics, **probe_metrics}
    return new_state, metrics
  return train_step


def sample_batch(config: ml_collections.ConfigDict) -> dict[str, jax.ShapeDtypeStruct]:
  """Abstract batch with the data's per-example shapes, for init under eval_shape."""
  info = sources.info(config.data.source, data_dir=config.data.data_dir or None)
  if info.image_shape is None:
    raise ValueError(f'config.data.source={config.data.source!r} has no images; '
                     f'config.method={config.method!r} needs an image source.')
  b = config.batch_size
  return {'image': jax.ShapeDtypeStruct((b, *info.image_shape), jnp.uint8),
          'label': jax.ShapeDtypeStruct((b,), jnp.int32)}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Pretrains (or resumes) in `workdir`, then evaluates; returns results.json's content."""
  # ---- Check the config before compiling or building anything. ----------------------------
  validate.check(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  is_main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  if is_main:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))

  # ---- Mesh, method, optimiser, state shapes and shardings. --------------------------------
  mesh = sharding.make_mesh(config.mesh)
  method = methods.get(config.method)(config)
  tx, lr_schedule = optim.make(config)
  probe = online_probe.make(config, method)
  init_fn = make_init(method, tx, sample_batch(config), config.seed, probe)
  abstract_state = jax.eval_shape(init_fn)
  state_sharding = sharding.state_shardings(abstract_state, mesh)
  batch_sharding = sharding.batch_sharding(mesh)

  # ---- Restore or initialise. -------------------------------------------------------------
  ckpt = checkpoint.Manager(os.path.join(workdir, 'checkpoints'),
                            max_to_keep=config.checkpoint.max_to_keep)
  init_jit = jax.jit(init_fn, out_shardings=state_sharding)
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(abstract_state, state_sharding)
    if is_main:
      print(f"Resuming from step {meta['step']} ({ckpt.directory}).")
  else:
    state = init_jit()
  start = int(state.step)

  # ---- Train. ------------------------------------------------------------------------------
  step_fn = jax.jit(make_train_step(method, tx, lr_schedule, probe), donate_argnums=0,
                    in_shardings=(state_sharding, batch_sharding),
                    out_shardings=(state_sharding, sharding.replicated(mesh)))
  writer = metrics_lib.Writer(workdir, total_steps=config.total_steps, initial_step=start,
                              progress=config.progress_bar)
  timer = metrics_lib.Throughput(config.batch_size)
  evaluators = suite.Suite(config, method.embed, mesh)
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
        if step < config.total_steps and suite.due(config, step):
          # Periodic evaluations (config.evals.<name>.every_steps), one seed, no random init;
          # the last step's are the final report's.
          scores = evaluators.run({'': [(state.params, state.model_state)]},
                                  suite.due(config, step))
          writer.write(step, {f'eval/{k}': v for k, v in scores.items()})
          timer.reset(step)
  finally:
    # Also on errors and interrupts: an async save in flight must land, not be torn.
    ckpt.close()

  # ---- Evaluate the pretrained encoder and its random initialisation; reports. ------------
  results = evaluate(config, evaluators, state, random_init_encoders(config, method, tx, mesh))
  writer.write(int(state.step), {f'eval/{k}': v for k, v in results.items() if k != 'step'})
  writer.close()
  if is_main:
    reports.write(workdir, results, evaluators.test_features)
    print(reports.table(results))
  return results


def random_init_encoders(config: ml_collections.ConfigDict, method: methods.Method,
                         tx: optax.GradientTransformation, mesh) -> list[suite.Encoder]:
  """(params, model_state) at step 0 for seeds config.seed + i, i < config.eval.num_seeds."""
  encoders = []
  for i in range(config.eval.num_seeds):
    init_fn = make_init(method, tx, sample_batch(config), config.seed + i)
    shardings = sharding.state_shardings(jax.eval_shape(init_fn), mesh)
    initial = jax.jit(init_fn, out_shardings=shardings)()
    encoders.append((initial.params, initial.model_state))
  return encoders


def evaluate(config: ml_collections.ConfigDict, evaluators: suite.Suite, state: TrainState,
             random_init: list[suite.Encoder]) -> dict[str, float]:
  """All of config.evals on `state`'s encoder and on `random_init` (under 'random_init/')."""
  pretrained = [(state.params, state.model_state)] * config.eval.num_seeds
  results = evaluators.run({'': pretrained, 'random_init/': random_init})
  results['step'] = int(state.step)
  return results
