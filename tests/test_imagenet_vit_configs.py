"""The paper-scale ViT configs (configs/imagenet/mocov3_vits16.py, dino_vits16.py): their
`smoke` variants train and evaluate on builtin:digits (no ImageNet here), and the full ones
hold the papers' numbers."""
import importlib

import pytest

from sslax import optim
from sslax import train

CONFIGS = ('mocov3_vits16', 'dino_vits16')


def _config(name: str, arg: str = ''):
  return importlib.import_module(f'configs.imagenet.{name}').get_config(arg)


@pytest.mark.parametrize('name', CONFIGS)
def test_smoke_config_trains_and_evaluates_on_digits(name, tmp_path):
  c = _config(name, 'smoke')
  c.data.source = c.eval.source = 'builtin:digits'
  c.data.in_memory = True
  c.data.data_dir = str(tmp_path / 'tfds')
  c.eval.test_split = 'test'
  c.progress_bar = False
  results = train.run(c, str(tmp_path / 'work'))
  assert results['step'] == c.total_steps
  assert 0.0 <= results['knn/accuracy'] <= 1.0


def test_full_configs_hold_the_papers_recipes():
  m = _config('mocov3_vits16')
  assert (m.batch_size, m.mocov3.temperature, m.optim.weight_decay) == (4096, 0.2, 0.1)
  assert optim.schedule(m)(m.optim.warmup_steps) == pytest.approx(1.5e-4 * 4096 / 256)
  assert m.total_steps == int(300 * 1_281_167 / 4096)
  assert (m.model.width, m.model.depth, m.model.num_heads, m.model.patch_size) == (384, 12, 6, 16)
  d = _config('dino_vits16')
  assert (d.batch_size, d.dino.num_local, d.dino.local_size, d.data.image_size) == (1024, 10, 96,
                                                                                    224)
  assert optim.schedule(d)(d.optim.warmup_steps) == pytest.approx(5e-4 * 1024 / 256)
  assert (d.dino.warmup_teacher_temperature, d.dino.teacher_temperature) == (0.04, 0.07)
  for c in (m, d):
    assert c.data.source == 'tfds:imagenet2012' and c.model.pool == 'cls'
    assert c.model.dtype == 'bfloat16'
