"""The keys every config has, with defaults (configs/*.py start from `base()`), and which keys
two resolved configs differ in.

Keeping them in one place means a `--config.key=value` override type-checks
against the same keys in every experiment.
"""
from typing import Any

import ml_collections

from sslax import errors
from sslax import optim

ARGS = ('', 'smoke')


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = ''
  c.seed = 0
  c.total_steps = 1000
  # A workdir or sslax.export directory whose params/model_state a new run starts from
  # (sslax/init_from.py): continued pretraining on new data, or fine-tuning in its own run.
  c.init_from = ''
  c.batch_size = 256             # global, over all devices and processes
  c.mesh = ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'model': 1})
  # FSDP (mesh.fsdp > 1): state arrays with at least this many elements are split over
  # 'fsdp'; smaller ones stay replicated, where gathering them would cost more than they save.
  c.fsdp_min_size = 2**14
  c.log_every = 50
  c.progress_bar = True
  # A NaN/inf loss or gradient: 'stop' raises naming the step (the last good checkpoint
  # stays the newest); 'skip' leaves that step's update out and counts it in metrics.
  c.nan_policy = 'stop'
  # GradCache micro-batches per step (sslax/grad_cache.py): activation memory of one
  # micro-batch, yet every example of the global batch is a negative. 1 = off.
  c.grad_accum_steps = 1
  # True: sslax.main compiles with XLA's backend optimisation level 0 (XLA_FLAGS
  # --xla_backend_optimization_level=0), about half the CPU time of compiling, for slower
  # steps: for smoke runs, where compiling is most of the time (measured on a CIFAR-10
  # smoke run: 28.7 -> 14.1 CPU-seconds, same results). Set before JAX starts, so a
  # process that already started JAX (a test calling train.run) is unaffected.
  c.fast_compile = False

  c.data = ml_collections.ConfigDict()
  c.data.source = ''             # builtin:NAME | tfds:NAME | folder:DIR | npz:PATH | text:PATH | tsv:PATH
  c.data.train_split = 'train'
  c.data.data_dir = ''           # where TFDS data sets live / local sources are built; '' = TFDS default
  c.data.in_memory = True        # decode the split once into host memory (small data sets)
  c.data.prefetch = 2            # batches prepared ahead of the step (per worker with num_workers)
  # Variable-size images (data/host_crops.py): processes that decode and crop on the host;
  # -1 = every core, 0 = in the training process. Fixed-size sets ignore it.
  c.data.num_workers = -1
  # Threads per decoding process (each worker, or the training process with num_workers=0)
  # that read and decode whole batches ahead, in order. Decoding (simplejpeg) and resizing
  # (OpenCV) release the GIL, so threads add cores without a process's hand-over copies.
  c.data.read_threads = 1
  # An image file that cannot be decoded: 'error' stops the build naming it, 'skip' leaves
  # it out (counted in the log). Audio folders read it too.
  c.data.bad_files = 'error'
  c.data.image_size = 32         # model input side; views are cropped and resized to it
  c.data.tokenizer = ''          # text sources: 'byte' | 'sentencepiece' (sslax/data/tokenizers.py); '' = none
  c.data.seq_len = 128           # text sources: tokens per example (truncated / PAD-padded)
  c.data.pack_sequences = 1      # text training rows: k records' tokens joined by SEP (short sentences)
  c.data.vocab_size = 4096       # tokenizer='sentencepiece': ids incl. 6 specials (trained once per workdir)
  c.data.tokenizer_dir = ''      # tokenizer='sentencepiece': where spm.model lives; '' = WORKDIR/tokenizer

  c.optim = optim.defaults()

  c.checkpoint = ml_collections.ConfigDict({'every_steps': 500, 'max_to_keep': 3})

  # Where and how the downstream evaluators read labelled data; each evaluator below may
  # name its own `source` ('' = this one).
  c.eval = ml_collections.ConfigDict()
  c.eval.source = ''             # labelled data for the downstream evaluators, same syntax
  c.eval.train_split = 'train'
  c.eval.test_split = 'test'
  c.eval.batch_size = 256
  c.eval.num_seeds = 1           # > 1: every report is mean +- std over seeds seed, seed+1, ...
  # A scikit-learn logistic regression on the raw inputs of the same splits (pixels, TF-IDF or
  # mean log-mel; sslax/evaluators/raw_input.py), reported next to pretrained and random init.
  c.eval.raw_input = True
  c.eval.raw_input_max_train = 10000   # its training examples at most (stratified subsample)
  # > 0: evaluate on at most this many records of each split, evenly spaced over it (so
  # sources stored class by class keep every class); 0: the whole split.
  c.eval.max_train_examples = 0
  c.eval.max_test_examples = 0
  # Host memory an evaluation may hold per split (sslax/evaluators/suite.py): a split's
  # decoded records are kept in memory only when they fit (else read batch by batch), and
  # its features are copied to host numpy only when they fit (else they stay on the mesh,
  # sharded over devices, and the probe trains by mini-batches, k-means runs on device).
  # 4 GiB holds MNIST/CIFAR-size splits and their features; ImageNet's 1.28M x 2048 float32
  # train features (10 GB) stream.
  c.eval.max_host_bytes = 4 * 2**30
  # Few labels (sslax/evaluators/few_labels.py): knn, the probes, fine_tune and the raw-input
  # baseline scored again on class-balanced subsets of the training split, drawn per seed:
  # ints are labels per class, floats in (0, 1) fractions of each class, e.g. (1, 5, 25).
  c.eval.label_budgets = ()

  # Downstream evaluators by name (sslax/evaluators/suite.py, README "Evaluation"). `type` is
  # one of evaluators/options.py TYPES; `every_steps` > 0 also runs it during pretraining (0: only at the end).
  c.evals = ml_collections.ConfigDict()
  c.evals.knn = dict(type='knn', source='', every_steps=0, k=20, temperature=0.07)
  c.evals.linear_probe = dict(type='linear_probe', source='', every_steps=0,
                              l2_grid=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2), steps=300)

  # A linear classifier trained inside the train step on stop-gradient features of the
  # unaugmented batch (SimCLR appendix B.9, solo-learn): accuracy during pretraining for the
  # price of one extra forward pass. Needs labels in config.data.source.
  c.online_probe = ml_collections.ConfigDict()
  c.online_probe.enabled = False
  c.online_probe.learning_rate = 1e-3
  return c


def check_arg(config_file: str, arg: str) -> None:
  """A config file's `get_config(arg)` accepts '' and 'smoke' only."""
  if arg not in ARGS:
    raise errors.ConfigError(f'{config_file}: unknown argument {arg!r}; use '
                             f'{" or ".join(repr(a) for a in ARGS)}, e.g. {config_file}:smoke.')


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """What every config's `smoke` variant shares: a few steps, a checkpoint to resume from,
  and evaluators on small evenly spaced samples of the eval splits with a few probe and
  fine-tune steps, so that a smoke run on any real source (e.g. CIFAR-10's 60,000 images)
  ends in under a minute on a CPU. Model sizes stay with each config."""
  c.total_steps = 4
  c.fast_compile = True
  c.log_every = 2
  c.checkpoint.every_steps = 2
  c.eval.max_train_examples = 256
  c.eval.max_test_examples = 128
  c.eval.batch_size = 64
  c.eval.num_seeds = 1
  c.eval.label_budgets = ()   # tests switch them on where they test them
  for ev in c.evals.values():
    if ev.type == 'linear_probe':
      ev.update(steps=50, l2_grid=(1e-4, 1e-2))
    elif ev.type == 'fine_tune':
      # About two steps over the sampled train examples (the budget is in epochs).
      ev.epochs = 2 * ev.batch_size / c.eval.max_train_examples
      if 'warmup_steps' in ev:
        ev.warmup_steps = 0
    ev.every_steps = 0
  return c


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
