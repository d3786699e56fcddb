"""Every paper-scale config (configs/paper/) trains its `smoke` variant on CPU and evaluates it;
a copy of its workdir cut back to step 2's checkpoint (what a kill then leaves) resumes to the
end and must hold the same train state, bit for bit; TFDS sources run on
`tfds.testing.mock_data`."""
import contextlib
import importlib

import pytest

from sslax import storage
from sslax import train
from sslax.data import mock_catalog
from tests import resumes
from tests import test_train

PAPER_CONFIGS = ('simclr_r50', 'byol_r50', 'mocov3_vits16', 'dino_vits16', 'mae_vitb16',
                 'bert_base', 'cpc_librispeech')


@pytest.mark.parametrize('name', PAPER_CONFIGS)
def test_paper_config_smoke_runs_and_resumes(name, tmp_path, monkeypatch):
  module = importlib.import_module(f'sslax.configs.paper.{name}')
  full, config = module.get_config(), module.get_config('smoke')
  assert full.total_steps >= 10_000 and full.batch_size >= 256   # the real recipe is untouched
  config.data.data_dir = str(tmp_path / 'tfds')
  config.progress_bar = False
  config.evals.knn.k = 5
  # TFDS's mock data lives in this process only: grain worker processes would reopen the
  # (absent) catalog data set, so the host crops run in this process.
  config.data.num_workers = 0
  if config.data.source == 'tfds:imagenet2012':
    # 48 mock images over 1000 random classes leave the probe no held-out examples to pick
    # its l2 with; kNN still evaluates the pretrained and the random-init encoder.
    config.evals.linear_probe.enabled = False
  # Saves at steps 2 and 3: the straight run trains 3 steps and its copy resumed from step 2
  # one, 4 steps in all, as the kill run and resume this test made before did.
  config.total_steps = 3
  workdir = tmp_path / 'run'
  with mock_catalog.catalog_mock() if config.data.source.startswith('tfds:') else \
      contextlib.nullcontext():
    saves = resumes.record_saves(monkeypatch)
    results = train.run(config, str(workdir))
    assert sorted(p.name for p in (storage.path(workdir) / 'checkpoints').iterdir()) == ['2', '3']
    # The uninterrupted run above is the reference: resumed from step 2, the same config must
    # reach the same parameters, optimiser state, model state and EMA targets.
    resumes.resume_copy(saves, config, workdir, tmp_path / 'resumed', step=2)
  resumes.assert_same_final_state(saves, workdir, tmp_path / 'resumed', step=3)
  assert results['step'] == 3
  assert (workdir / 'results.json').exists()


def test_accelerator_check_writes_a_row_per_config(tmp_path, monkeypatch):
  import json
  import sys
  sys.path.insert(0, str(test_train.REPO / 'experiments'))
  import accelerator_check
  out = tmp_path / 'check.json'
  monkeypatch.setattr(sys, 'argv', [
      'accelerator_check.py', '--configs', 'bert_base', '--variant', 'smoke', '--steps', '2',
      '--workdir', str(tmp_path / 'work'), '--out', str(out)])
  accelerator_check.main()
  report = json.loads(out.read_text())
  assert report['devices'] == 8 and report['peak_source'] == 'measured float32 matmul'
  (row,) = report['rows']
  assert row['config'] == 'configs/paper/bert_base.py:smoke', row
  for key in ('step_s', 'examples_per_s', 'flops_per_step', 'mfu', 'headroom'):
    assert row[key] > 0, key
  # XLA counts one device's share of an SPMD step: MFU is that over one device's peak.
  assert row['flops_per_step'] == pytest.approx(8 * row['flops_per_device'])
  assert row['mfu'] == pytest.approx(
      row['flops_per_device'] / row['step_s'] / report['peak_flops_per_device'])
