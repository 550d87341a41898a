"""Executes the Colab notebook headless, top to bottom, with a tiny config (as CI does)."""

import os

import papermill
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'experiments', 'notebooks', 'grapheme_jax_colab.ipynb')


@pytest.mark.slow
def test_colab_notebook_runs_top_to_bottom_on_cpu(tmp_path, monkeypatch):
  # The kernel is a separate process: share the suite's persistent compilation cache with it.
  monkeypatch.setenv('JAX_COMPILATION_CACHE_DIR', os.path.join(ROOT, '.jax_cache'))
  monkeypatch.setenv('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
  out = tmp_path / 'executed.ipynb'
  notebook = papermill.execute_notebook(
    NOTEBOOK,
    str(out),
    parameters={
      'WORKDIR': str(tmp_path / 'runs'),
      'TRAIN_STEPS': 6,
      'SWEEP_STEPS': 4,
      'TINY': True,
    },
    cwd=ROOT,
    kernel_name='python3',
    progress_bar=False,
  )
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
  text = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream')
  assert 'backend: cpu' in text and '6 steps in' in text
  images = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(images) >= 3  # Curves, the three graphs, the sweep's curves.
  for point in ('beta=0', 'beta=0.5', 'beta=1'):
    assert os.path.exists(tmp_path / 'runs' / 'beta_sweep' / point / 'seed=0' / 'results.json')
  assert os.path.exists(tmp_path / 'runs' / 'beta_sweep' / 'results.md')
