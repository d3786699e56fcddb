"""CPC on spoken digits (FSDD) learns: its linear probe beats the random-init encoder's.

Measured (logistic probe on the 300 test clips, pretrained / random init, seeds 0, 1, 2):
0.847 / 0.753, 0.823 / 0.717, 0.787 / 0.710: gains 0.093, 0.107, 0.077 (std 0.012). kNN@20
gained 0.067, 0.133, 0.080, less steadily, so the probe is the score. The margin, 0.04, is ~3
std below the smallest gain and ~3 std above 0. ~36 s of CPU in the child.
"""
from tests import learning

MARGIN = 0.04


def config(data_dir, seed: int = 0):
  """configs/cpc_audio.py:smoke grown to 200 steps on whole clips with 40 mel bins (the
  smoke's 0.25 s clips cut most digits short: at 150 steps kNN gains were 0.11, -0.02, 0.10)."""
  from sslax.configs import cpc_audio
  c = cpc_audio.get_config('smoke')
  c.seed = seed
  c.data.source = c.eval.source = f'folder:{learning.REPO.parent}/shared/data/fsdd'
  c.total_steps = 200
  c.batch_size = 32
  c.optim.warmup_steps = 20
  c.data.clip_seconds = 1.0
  c.audio.update(crop_seconds=0.5, n_mels=40, time_width=5, freq_width=5)
  c.model.max_frames = 100
  return learning.quick(c, data_dir)


def test_cpc_beats_random_init_on_spoken_digits(tmp_path):
  from tests.conftest import shared_data   # here, not at import: see tests/learning.py
  shared_data('fsdd')
  results = learning.train(__name__, tmp_path / 'tfds', tmp_path / 'run')
  gain = results['linear_probe/accuracy'] - results['random_init/linear_probe/accuracy']
  assert gain > MARGIN, results
