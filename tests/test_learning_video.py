"""Next-frame prediction on Moving-MNIST learns: held-out MSE is below copying the last frame.

Measured (clips of the first 1,000 MNIST test digits, next-frame MSE / copy-last-frame MSE,
seeds 0, 1, 2): 0.0502 / 0.0560, 0.0500 / 0.0560, 0.0501 / 0.0560: ratios 0.897, 0.894, 0.894.
The residual head starts at zero, i.e. at copying the last frame (ratio 1), so a constant loss
stays there; the bound, 0.95, is half the measured improvement, and the seeds differ by 0.003.
~25 s of training and ~10 s of held-out scoring.
"""
from tests import learning

MARGIN = 0.95


def config(data_dir, seed: int = 0):
  """configs/nextframe_video.py:smoke grown to 200 steps at batch 32."""
  from sslax.configs import nextframe_video
  c = nextframe_video.get_config('smoke')
  c.seed = seed
  c.data.source = f'npz:{learning.REPO.parent}/shared/data/mnist/mnist_{{split}}.npz'
  c.total_steps = 200
  c.batch_size = 32
  c.optim.warmup_steps = 20
  # The score is experiments/video_heldout.py's, not a downstream evaluator's.
  return learning.quick(c, data_dir, evals=())


def test_next_frame_beats_copying_the_last_frame(tmp_path):
  from tests.conftest import shared_data   # here, not at import: see tests/learning.py
  shared_data('mnist')
  learning.train(__name__, tmp_path / 'tfds', tmp_path / 'run')
  # Clips of the first 1,000 test digits: all 10,000 take 10x as long, and on these the three
  # measured seeds' ratios already agree to 0.003.
  scores = learning.experiment('video_heldout.py', '--workdir', str(tmp_path / 'run'),
                               '--split', 'test[:1000]')
  ratio = scores['next_frame_mse'] / scores['copy_last_frame_mse']
  assert ratio < MARGIN, scores
