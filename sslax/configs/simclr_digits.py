"""SimCLR on scikit-learn's handwritten digits: the embedded default, no download.

  python -m sslax.main --config configs/simclr_digits.py --workdir /tmp/sslax-demo

Data: `builtin:digits`, 1,797 real 8x8 greyscale digits (1,437 train / 360 test,
stratified), upsampled to 16x16 by the augmentation's random resized crop.
Model: a small CIFAR-stem ResNet (widths 16-32-64, one basic block per stage).
Hardware and time: a 2-core CPU, about 5 minutes including compilation and
evaluation. Expected result: see the README's results table (kNN and linear
probe of the pretrained encoder above its random initialisation).

`configs/simclr_digits.py:smoke` trains 4 steps on a tiny model in seconds.
"""
from sslax import config_base


def get_config(arg: str = ''):
  c = config_base.base()
  c.method = 'simclr'
  c.seed = 0
  c.total_steps = 600
  c.batch_size = 256
  c.log_every = 25

  c.data.source = 'builtin:digits'
  c.data.image_size = 16
  c.eval.source = 'builtin:digits'
  # Few labels (results.md's second table, label_efficiency.png): 1, 5 and 25 labelled
  # digits per class beside all ~144 (sslax/evaluators/few_labels.py).
  c.eval.label_budgets = (1, 5, 25)

  c.model = dict(name='resnet', stem='cifar', stem_width=16, widths=(16, 32, 64),
                 blocks=(1, 1, 1), block='basic', norm='batch', zero_init_residual=False,
                 conv_impl='auto', dtype='float32')   # conv_impl: sslax/models/resnet.py's CONV_IMPLS
  # chunked_loss=True: InfoNCE without the [2N, 2N] similarity matrix on any device (for
  # global batches whose matrix does not fit one device); same loss and gradients.
  c.simclr = dict(temperature=0.5, proj_hidden_dims=(128,), proj_dim=64, chunked_loss=False)
  # Digits are small and centred: mild crops, a small rotation and no flips or colour
  # (STACK.md calibration); blur and hue do nothing useful on 8x8 greyscale.
  c.augment = dict(crop_scale=(0.5, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.0,
                   jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0,
                   grayscale_prob=0.0, blur_prob=0.0, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
                   rotation_degrees=10.0, noise_std=0.05)

  # kNN also every 150 steps, for the curves; clustering and ridge cost ~1 s. Fine-tuning
  # (~35 CPU-s here for both encoders) is off so the run fits 5 minutes; switch it on with
  # --config.evals.fine_tune.enabled=True, here or in sslax.evaluate.
  c.evals.knn.every_steps = 150
  c.evals.ridge = dict(type='ridge', source='', every_steps=0, l2=1e-3)
  c.evals.clustering = dict(type='clustering', source='', every_steps=0, n_init=10)
  # 20 epochs of the 1,293 training digits left after holding out 10% (~200 steps), scored on
  # the held-out part every epoch; the test score is the best epoch's.
  c.evals.fine_tune = dict(type='fine_tune', source='', every_steps=0, enabled=False,
                           task='classification', epochs=20.0, batch_size=128,
                           learning_rate=1e-3, weight_decay=1e-4)
  # The online probe adds 16% to a step's FLOPs here (XLA cost analysis: 8.5 -> 9.9 GFLOP,
  # one extra forward pass of the batch), over the 10% we allow for free: off by default,
  # --config.online_probe.enabled=True switches it on.

  c.optim.name = 'adamw'
  c.optim.learning_rate = 2e-3
  c.optim.warmup_steps = 50
  c.optim.weight_decay = 1e-4
  c.checkpoint.every_steps = 300

  config_base.check_arg('configs/simclr_digits.py', arg)
  if arg == 'smoke':
    config_base.smoke(c)
    c.batch_size = 32
    c.model.stem_width = 8
    c.model.widths = (8, 16)
    c.model.blocks = (1, 1)
    c.simclr.proj_hidden_dims = (32,)
    c.simclr.proj_dim = 16
  return c
