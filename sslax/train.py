"""The shared trainer: one loop for every method and modality (DESIGN.md, "The one path").

`sslax.train(config, workdir)` is `run` (the module is callable, sslax/callable_module.py):
pretrain, or resume, in `workdir`, then evaluate; returns results.json's content.
"""
import json
import os
from typing import Any, NamedTuple

from flax.core import meta
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax import artifacts
from sslax import callable_module
from sslax import checkpoint
from sslax import config_base
from sslax import errors
from sslax import grad_cache
from sslax import init_from
from sslax import metrics as metrics_lib
from sslax import methods
from sslax import optim
from sslax import preemption
from sslax import reports
from sslax import sharding
from sslax import storage
from sslax import validate
from sslax import workdir_lock
from sslax.data import host_views
from sslax.data import tokenizers
from sslax.data import train_batches
from sslax.evaluators import data_check
from sslax.evaluators import online_probe
from sslax.evaluators import options
from sslax.evaluators import suite
from sslax.state import TrainState


def make_keyed_init(method: methods.Method, tx: optax.GradientTransformation, sample_batch,
                    probe: online_probe.OnlineProbe | None = None):
  """init(root_key): the state at step 0, a pure function of the key (one program, Init)."""
  def init(root) -> TrainState:
    init_key, train_key = jax.random.split(root)
    batch = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sample_batch)
    # Weights a model boxed with logical axis names (logical_axes) are stored as plain arrays.
    params, model_state, extra = meta.unbox(method.init(init_key, batch))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      model_state=model_state, extra=extra, rng=train_key,
                      probe=probe.init(params, model_state, batch) if probe else None)
  return init


def make_init(method: methods.Method, tx: optax.GradientTransformation, sample_batch,
              seed: int, probe: online_probe.OnlineProbe | None = None):
  """init(): the state at step 0, a pure function of the seed."""
  keyed = make_keyed_init(method, tx, sample_batch, probe)
  return lambda: keyed(jax.random.PRNGKey(seed))


class Init:
  """states(seeds): the train state at step 0 of each seed, from one program compiled once
  (the key is its argument): a run's own init and its random-init encoders share it."""

  def __init__(self, keyed, mesh, state_sharding):
    self._mesh, self._compiled = mesh, None
    self._jitted = jax.jit(keyed, in_shardings=sharding.replicated(mesh),
                           out_shardings=state_sharding)

  def states(self, seeds) -> list[TrainState]:
    keys = [sharding.replicate(np.asarray(jax.random.PRNGKey(s)), self._mesh) for s in seeds]
    self._compiled = self._compiled or compile_one_shot(self._jitted, keys[0])
    return [self._compiled(key) for key in keys]


# Initialisation runs once, so on CPU it compiles at LLVM level 1, not XLA's default 2: on
# tests/test_learning_image.py's SimCLR the init program compiled in 1.98 s instead of 4.74 s
# and gave bit-identical weights (level 0: 1.03 s, but weights that differ in the last bit).
# A level already in XLA_FLAGS (config.fast_compile, the tests) is left alone.
ONE_SHOT_OPTIONS = {'xla_backend_optimization_level': 1}


def compile_one_shot(jitted, *args):
  """`jitted` compiled for `args`, with ONE_SHOT_OPTIONS on CPU."""
  lowered = jitted.lower(*args)
  if (jax.default_backend() != 'cpu'
      or '--xla_backend_optimization_level' in os.environ.get('XLA_FLAGS', '')):
    return lowered.compile()
  return lowered.compile(compiler_options=ONE_SHOT_OPTIONS)


def logical_axes(method: methods.Method, sample_batch) -> dict[tuple[str, ...], tuple]:
  """The logical axis names the method's model gives its parameters (`nn.with_logical_
  partitioning`), by dict-key path: what sharding.state_shardings maps to the mesh."""
  def boxed_params():
    batch = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sample_batch)
    return method.init(jax.random.PRNGKey(0), batch)[0]
  return sharding.logical_axes(jax.eval_shape(boxed_params))


def state_shardings(config: ml_collections.ConfigDict, method: methods.Method, sample_batch,
                    abstract_state, mesh) -> Any:
  """The train state's shardings on `mesh`: logical names, else the FSDP size rule."""
  return sharding.state_shardings(abstract_state, mesh, config.fsdp_min_size,
                                  logical_axes(method, sample_batch))


NAN_POLICIES = ('stop', 'skip')


def make_train_step(method: methods.Method, tx: optax.GradientTransformation, lr_schedule,
                    nan_policy: str = 'stop', grad_accum_steps: int = 1,
                    probe: online_probe.OnlineProbe | None = None):
  """train_step(state, batch) -> (state, metrics), one jit-able pure function.

  metrics['nonfinite'] is 1.0 when the loss or a gradient is NaN/inf. With
  nan_policy='skip' such a step leaves params, optimiser, model and method state
  as they were (only `step` advances, so the next step sees new data and keys).
  grad_accum_steps > 1: GradCache micro-batches (sslax/grad_cache.py), same loss.
  probe: an online linear probe on stop-gradient features (evaluators/online_probe.py).
  """
  if nan_policy not in NAN_POLICIES:
    raise errors.ConfigError(
        f'config.nan_policy={nan_policy!r} is unknown; choose one of {NAN_POLICIES}.')

  def train_step(state: TrainState, batch):
    step_key = jax.random.fold_in(state.rng, state.step)
    def loss_fn(params):
      return method.loss(params, state.model_state, state.extra, batch, step_key)
    if grad_accum_steps > 1:
      (loss, (model_state, metrics)), grads = grad_cache.value_and_grad(
          method, state.params, state.model_state, batch, step_key, grad_accum_steps,
          extra=state.extra)
    else:
      (loss, (model_state, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
    grad_norm = optax.global_norm(grads)
    # A NaN/inf anywhere in the gradients makes their global norm non-finite: one check.
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    extra = method.update_extra(state.extra, params, state.step)
    new = (params, opt_state, model_state, extra)
    if nan_policy == 'skip':
      old = (state.params, state.opt_state, state.model_state, state.extra)
      new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    params, opt_state, model_state, extra = new
    metrics = {**metrics, 'loss': loss, 'learning_rate': lr_schedule(state.step),
               'grad_norm': grad_norm, 'param_norm': optax.global_norm(params),
               'nonfinite': 1.0 - finite.astype(jnp.float32)}
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
  """Abstract global batch shaped like the training data (read from its first record)."""
  record = train_batches.first_train_record(config, methods.train_crops(config))
  return {k: jax.ShapeDtypeStruct((config.batch_size, *v.shape), v.dtype)
          for k, v in record.items()}


class Parts(NamedTuple):
  """What the train step is made of, before anything is initialised or compiled."""
  method: methods.Method
  tx: optax.GradientTransformation
  init: Init                    # TrainState at step 0 of any seed
  abstract_state: TrainState    # ShapeDtypeStructs
  state_sharding: TrainState    # NamedShardings on the mesh
  batch_sharding: Any
  step_fn: Any                  # jitted train_step(state, batch), state donated


def build(config: ml_collections.ConfigDict, mesh, sample) -> Parts:
  """The sharded train step of `config` on `mesh`, for `sample` (an abstract global batch):
  what train.run executes, and what sslax.compile_check compiles for a TPU topology."""
  method = methods.get(config.method)(config)
  tx, lr_schedule = optim.make(config)
  probe = online_probe.make(config, method)
  keyed = make_keyed_init(method, tx, sample, probe)
  abstract_state = jax.eval_shape(keyed, jax.random.PRNGKey(0))
  state_sharding = state_shardings(config, method, sample, abstract_state, mesh)
  batch_sharding = sharding.batch_sharding(mesh)
  grad_cache.check_method(method, config.method, config.grad_accum_steps)
  step_fn = jax.jit(make_train_step(method, tx, lr_schedule, config.nan_policy,
                                    config.grad_accum_steps, probe), donate_argnums=0,
                    in_shardings=(state_sharding, batch_sharding),
                    out_shardings=(state_sharding, sharding.replicated(mesh)))
  return Parts(method, tx, Init(keyed, mesh, state_sharding), abstract_state, state_sharding,
               batch_sharding, step_fn)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Pretrains (or resumes) in `workdir`, then evaluates; returns results.json's content."""
  # ---- Check the config before compiling or building anything. ----------------------------
  validate.check(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  storage.make_dir(workdir)   # one line, not a traceback, when it is a file
  # One writer per workdir, from before its first write until the run ends however it ends.
  with workdir_lock.hold(workdir):
    return _train(config, workdir)


def _train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  is_main = jax.process_index() == 0
  # A local folder, a shared filesystem or gs:// (sslax/storage.py); only process 0 writes
  # config.json, input_spec.json, logs and reports; every process writes checkpoint shards.
  root = storage.path(workdir)
  # Every source the run reads (evaluation ones too, else first opened after pretraining)
  # built and its first records read before anything compiles (evaluators/data_check.py).
  data_check.check_sources(config)
  config_path = root / artifacts.CONFIG
  resolved = json.loads(config.to_json_best_effort())
  previous = json.loads(config_path.read_text()) if config_path.exists() else None

  # A trained tokenizer (SentencePiece) is made once and kept in the workdir; `resolved` above
  # keeps data.tokenizer_dir as given, so a moved workdir still finds its own.
  config = tokenizers.prepare(config, workdir)

  # ---- Mesh, method, optimiser, state shapes and shardings. --------------------------------
  mesh = sharding.make_mesh(config.mesh)
  sample = sample_batch(config)
  crops = methods.train_crops(config)   # views the data layer cuts on the host, or None
  parts = build(config, mesh, sample)
  method = parts.method
  # FSDP / tensor parallelism: how much stays replicated (raises if mesh.model is wasted).
  layout = sharding.report(parts.abstract_state.params, parts.state_sharding.params, mesh)
  if is_main and layout:
    print(layout)

  # ---- Restore or initialise. -------------------------------------------------------------
  ckpt = checkpoint.Manager(root / artifacts.CHECKPOINTS,
                            max_to_keep=config.checkpoint.max_to_keep)
  state, skipped_steps = _restore_or_init(config, parts, ckpt, previous, resolved)
  start = int(state.step)
  if is_main:   # Written once the config is known to fit the workdir's checkpoint.
    config_path.write_text(json.dumps(resolved, indent=2, sort_keys=True))
    # What one example looks like, so sslax.load needs no training data (sslax/encoder.py).
    (root / artifacts.INPUT_SPEC).write_text(json.dumps(artifacts.spec_of(
        train_batches.encoder_inputs(sample, crops)), indent=2))

  # ---- Train. ------------------------------------------------------------------------------
  writer = metrics_lib.Writer(workdir, total_steps=config.total_steps, initial_step=start,
                              progress=config.progress_bar)
  evaluators = suite.Suite(config, method.embed, mesh, embed_sequence=method.embed_sequence)
  evaluators.check_budgets()
  try:
    state, preempted = _steps(config, parts, mesh, crops, state, skipped_steps, ckpt, writer,
                              evaluators)
  except BaseException:
    # Event files on gs:// are uploaded on flush; close them now rather than at interpreter
    # exit, when the filesystem's threads are gone.
    writer.close()
    raise
  finally:
    # Also on errors and interrupts: an async save in flight must land, not be torn.
    ckpt.close()
  if preempted:
    writer.close()
    return {'step': int(state.step), 'preempted': True}

  # ---- Evaluate the pretrained encoder and its random initialisation; reports. ------------
  results = evaluate(config, evaluators, state, random_init_encoders(config, parts.init))
  writer.write(int(state.step), {f'eval/{k}': v for k, v in results.items() if k != 'step'})
  writer.close()
  if is_main:
    reports.write(workdir, results, evaluators.test_features, samples=evaluators.samples,
                  pictures=evaluators.pictures)
    print(reports.table(results))
  return results


def _steps(config: ml_collections.ConfigDict, parts: Parts, mesh, crops, state: TrainState,
           skipped_steps: int, ckpt: checkpoint.Manager, writer: metrics_lib.Writer,
           evaluators: suite.Suite) -> tuple[TrainState, bool]:
  """Trains from state.step to config.total_steps, logging, saving and running the periodic
  evaluations; returns (state, whether a preemption notice stopped it early)."""
  start = int(state.step)
  timer = metrics_lib.Throughput(config.batch_size)
  meta = lambda step: {'step': step, 'data_position': step, 'seed': config.seed,
                       'skipped_steps': skipped_steps}
  preempted = False
  # Per-step NaN flags stay on device until the next log or save point, so checking every
  # step costs no host sync, yet the first bad step is known exactly.
  pending_flags, first_pending = [], start + 1
  with preemption.Watcher() as watcher:
    # A generator: nothing is read or built unless a step runs.
    batches = train_batches.make_train(config, mesh, crops=crops, start_step=start)
    timer.reset(start)
    for step in range(start + 1, config.total_steps + 1):
      state, step_metrics = parts.step_fn(state, next(batches))
      writer.advance(1)
      pending_flags.append(step_metrics['nonfinite'])
      preempted = watcher.reached(step)
      save_due = (step % config.checkpoint.every_steps == 0 or step == config.total_steps
                  or preempted)
      if save_due or step % config.log_every == 0:
        flags = np.asarray(jax.device_get(pending_flags))
        if config.nan_policy == 'stop' and flags.any():
          bad = first_pending + int(np.argmax(flags))
          raise FloatingPointError(
              f'Loss or gradients are NaN/inf at step {bad}; stopping without saving '
              f'(last checkpoint: step {ckpt.latest_step()}). Lower config.optim.learning_rate, '
              f"set config.optim.grad_clip_norm, or set config.nan_policy='skip'.")
        skipped_steps += int(flags.sum())
        pending_flags, first_pending = [], step + 1
        scalars = jax.device_get(step_metrics)
        del scalars['nonfinite']
        if config.nan_policy == 'skip':
          scalars['skipped_steps'] = skipped_steps
        writer.write(step, {**scalars, **timer.measure(step)})
      if save_due:
        ckpt.save(step, state, meta(step))
      if preempted:
        if jax.process_index() == 0:
          print(f'Preemption notice (SIGTERM): saved step {step}; rerun the same command '
                'to resume.')
        return state, True
      if step < config.total_steps and options.due(config, step):
        # Periodic evaluations (config.evals.<name>.every_steps), one seed, no random init,
        # no few-label budgets; the last step's are the final report's.
        scores = evaluators.run({'': [(state.params, state.model_state)]},
                                options.due(config, step), budgets=False)
        writer.write(step, {f'eval/{k}': v for k, v in scores.items()})
        timer.reset(step)
  return state, False


def _restore_or_init(config: ml_collections.ConfigDict, parts: Parts,
                     ckpt: checkpoint.Manager, previous: dict[str, Any] | None,
                     resolved: dict[str, Any]) -> tuple[TrainState, int]:
  """(state, steps skipped so far): the workdir's latest checkpoint when there is one and it
  fits this config, else step 0 (from config.init_from's weights when set)."""
  is_main = jax.process_index() == 0
  if ckpt.latest_step() is None:
    (state,) = parts.init.states([config.seed])
    if config.get('init_from', ''):
      state, summary = init_from.apply(state, config.init_from)
      if is_main:
        print(summary)
    return state, 0
  # Without the workdir's config.json (deleted by hand) there is nothing to compare.
  changed = config_base.changed_keys(previous, resolved) if previous is not None else []
  problems = ckpt.mismatches(parts.abstract_state)
  if problems:
    ckpt.close()
    raise errors.ConfigError(
        f'{ckpt.directory} holds a checkpoint that does not fit this config (config keys '
        f'changed since it was written: {", ".join(changed) or "none recorded"}; first '
        f'differences: {"; ".join(problems[:3])}). Use a new --workdir, or undo those '
        'changes to resume.')
  state, meta = ckpt.restore(parts.abstract_state, parts.state_sharding)
  if is_main:
    print(f"Resuming from step {meta['step']} ({ckpt.directory})."
          + (f" Changed config keys: {', '.join(changed)}." if changed else ''))
  return state, meta.get('skipped_steps', 0)


def random_init_encoders(config: ml_collections.ConfigDict, init: Init) -> list[suite.Encoder]:
  """(params, model_state) at step 0 for seeds config.seed + i, i < config.eval.num_seeds;
  none when no evaluator is on (nothing would score them: no init to compile)."""
  if not options.enabled(config):
    return []
  states = init.states([config.seed + i for i in range(config.eval.num_seeds)])
  return [(state.params, state.model_state) for state in states]


def evaluate(config: ml_collections.ConfigDict, evaluators: suite.Suite, state: TrainState,
             random_init: list[suite.Encoder]) -> dict[str, float]:
  """All of config.evals on `state`'s encoder and on `random_init` (under 'random_init/'),
  and the raw-input baseline (under 'raw_input/logistic/', or 'raw_input/ridge/' for
  regression targets) unless config.eval.raw_input=False."""
  pretrained = [(state.params, state.model_state)] * config.eval.num_seeds
  results = evaluators.run({'': pretrained, 'random_init/': random_init} if random_init
                           else {'': pretrained})   # none when no evaluator is on
  if config.eval.get('raw_input', True):
    results.update(evaluators.raw_input())
  results.update(evaluators.budget_sizes())
  results['step'] = int(state.step)
  return results


callable_module.make_callable(__name__, run)   # sslax.train(config, workdir)
