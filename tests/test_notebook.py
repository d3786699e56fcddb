"""experiments/colab_tpu.ipynb runs top to bottom on CPU (its smoke variant), as CI runs it."""
import json
import pathlib

import nbclient
import nbformat

from tests.conftest import assert_fraction_of
from tests.test_train import data_dir  # noqa: F401 (fixture)

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_colab_notebook_trains_and_shows_results_on_cpu(tmp_path, data_dir, monkeypatch):
  # The kernel inherits this environment: 8 fake CPU devices (conftest), a tmp workdir, the
  # session's digits build. Not in Colab, so its install cell does nothing (no network).
  monkeypatch.setenv('SSLAX_WORKDIR', str(tmp_path / 'run'))
  monkeypatch.setenv('SSLAX_DATA_DIR', str(data_dir))
  nb = nbformat.read(REPO / 'experiments' / 'colab_tpu.ipynb', as_version=4)
  nbclient.NotebookClient(nb, timeout=300, kernel_name='python3',
                          resources={'metadata': {'path': str(REPO)}}).execute()
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert results['step'] == 4
  # The 128 test digits config_base.smoke samples.
  assert_fraction_of(results['knn/accuracy'], 128, 'knn/accuracy')
  code = [c for c in nb.cells if c.cell_type == 'code']
  text = lambda cell: ''.join(o.get('text', '') for o in cell.outputs)
  assert 'cpu device(s)' in text(code[1])
  assert '"knn/accuracy"' in text(code[-2])
  assert 'image encoder, step 4: features (64, 16)' in text(code[-1])
