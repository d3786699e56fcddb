"""SimCLR on scikit-learn's digits learns: its kNN accuracy beats the random-init encoder's.

Measured (kNN@20 on the 360 test digits, pretrained / random init, seeds 0, 1, 2):
0.944 / 0.775, 0.953 / 0.783, 0.958 / 0.761: gains 0.169, 0.169, 0.197 (std 0.013). The margin,
0.1, is ~6 std below the smallest gain and far above 0: a constant loss leaves the encoder at
its initialisation, gain ~0. ~45 s of CPU in the child (compile, 150 steps, both evaluations);
60-80 s of wall time on 2 cores shared with other jobs.
"""
from tests import learning

MARGIN = 0.1


def config(data_dir, seed: int = 0):
  """configs/simclr_digits.py:smoke, grown to 150 steps at batch 128."""
  from configs import simclr_digits
  c = simclr_digits.get_config('smoke')
  c.seed = seed
  c.total_steps = 150
  c.batch_size = 128
  c.optim.warmup_steps = 20
  c.model.update(stem_width=16, widths=(16, 32), blocks=(1, 1))
  c.simclr.update(proj_hidden_dims=(64,), proj_dim=32)
  c.evals.linear_probe.l2_grid = (1e-4, 1e-2)
  return learning.quick(c, data_dir)


def test_simclr_beats_random_init_on_digits(tmp_path):
  results = learning.train(__name__, tmp_path / 'tfds', tmp_path / 'run')
  gain = results['knn/accuracy'] - results['random_init/knn/accuracy']
  assert gain > MARGIN, results
