"""The keys every config has, with defaults; configs/*.py start from `base()`.

Keeping them in one place means a `--config.key=value` override type-checks
against the same keys in every experiment.
"""
import ml_collections

from sslax import optim


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = ''
  c.seed = 0
  c.total_steps = 1000
  c.batch_size = 256             # global, over all devices and processes
  c.mesh = ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'model': 1})
  c.log_every = 50
  c.progress_bar = True

  c.data = ml_collections.ConfigDict()
  c.data.source = ''             # builtin:NAME | tfds:NAME | folder:DIR | npz:PATH | text:PATH | tsv:PATH
  c.data.train_split = 'train'
  c.data.data_dir = ''           # where TFDS data sets live / local sources are built; '' = TFDS default
  c.data.in_memory = True        # decode the split once into host memory (small data sets)
  c.data.prefetch = 2            # batches prepared ahead of the step
  c.data.image_size = 32         # model input side; views are cropped and resized to it
  c.data.tokenizer = ''          # text sources: 'byte' (see sslax/data/tokenizers.py); '' = none
  c.data.seq_len = 128           # text sources: tokens per example (truncated / PAD-padded)

  c.optim = optim.defaults()

  c.checkpoint = ml_collections.ConfigDict({'every_steps': 500, 'max_to_keep': 3})

  c.eval = ml_collections.ConfigDict()
  c.eval.source = ''             # labelled data for the downstream evaluators, same syntax
  c.eval.train_split = 'train'
  c.eval.test_split = 'test'
  c.eval.batch_size = 256
  c.eval.knn_k = 20
  c.eval.knn_temperature = 0.07
  c.eval.probe_l2_grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
  c.eval.probe_steps = 300
  return c
