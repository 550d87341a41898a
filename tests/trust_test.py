"""Trust boundaries: only the config file the user names is executed.

Data files are parsed as JSON, checkpoints are read by orbax as arrays and JSON metadata, and the
workdir's own JSON files are read as data. These tests plant files that would run code (leaving a
marker file) if anything unpickled or evaluated them, and scan the sources for the calls that can
execute code.
"""

import ast
import json
import pathlib
import pickle

import jax
import jax.numpy as jnp
import pytest

from grapheme_jax import checkpoints, data

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Builtins that run code given as text, and modules that run code or deserialise objects.
BUILTINS = {'eval', 'exec', 'compile', '__import__'}
ANYWHERE = {'import_module', 'exec_module', 'run_path', 'run_module'}
MODULES = {'pickle', 'marshal', 'dill', 'cloudpickle', 'yaml', 'shelve', 'runpy', 'subprocess'}
# The one place code is executed on purpose: the config file named on the command line.
ALLOWED = {('experiments/sweep.py', 'exec_module')}  # load_config_module, for the sweep's --config.


def _dangerous_calls(path: pathlib.Path):
  for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
    if not isinstance(node, ast.Call):
      continue
    func = node.func
    owner = func.value if isinstance(func, ast.Attribute) else None
    owner = getattr(owner, 'id', None) or getattr(owner, 'attr', None)
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', None)
    pickles = any(k.arg == 'allow_pickle' for k in node.keywords)
    if (
      (isinstance(func, ast.Name) and name in BUILTINS)
      or name in ANYWHERE
      or owner in MODULES
      or (owner == 'os' and (name in ('system', 'popen') or name.startswith(('exec', 'spawn'))))
      or pickles
    ):
      yield name, f'{node.lineno}: {owner or ""}.{name}'


def test_sources_execute_no_code_but_the_named_config_file():
  sources = sorted([*ROOT.glob('grapheme_jax/*.py'), *ROOT.glob('experiments/**/*.py')])
  found = [
    f'{relative}:{where}'
    for path in sources
    for name, where in _dangerous_calls(path)
    if ((relative := path.relative_to(ROOT).as_posix()), name) not in ALLOWED
  ]
  assert not found
  imports = {
    alias.name.split('.')[0]
    for path in sources
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8')))
    if isinstance(node, (ast.Import, ast.ImportFrom))
    for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or '')])
  }
  assert not imports & (MODULES - {'subprocess'})


def test_the_scan_finds_what_it_looks_for(tmp_path):
  probe = tmp_path / 'probe.py'
  probe.write_text(
    'import pickle, os\nimport numpy as np\n'
    'eval("1")\npickle.loads(b"")\nnp.load("f", allow_pickle=True)\nos.system("true")\n'
    're.compile("x")\njson.loads("1")\nf.lower().compile()\n'
  )
  found = [where for _, where in _dangerous_calls(probe)]
  assert found == ['3: .eval', '4: pickle.loads', '5: np.load', '6: os.system']


class _Payload:
  """Unpickling this creates the marker file: the proof that something unpickled it."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_checkpoint_with_pickled_files_is_never_unpickled(tmp_path):
  workdir = tmp_path / 'run'
  state = {'w': jnp.arange(4.0), 'step': jnp.zeros((), jnp.int32)}
  ckpt = checkpoints.Checkpointer(str(workdir))
  ckpt.save(1, state)
  ckpt.save(2, state)
  ckpt.close()
  marker = tmp_path / 'executed'
  payload = pickle.dumps(_Payload(marker))
  planted = 0
  for path in (workdir / 'checkpoints' / '2').rglob('*'):
    if path.is_file():  # Every file of the latest checkpoint becomes a pickle bomb.
      path.write_bytes(payload)
      planted += 1
  assert planted
  ckpt = checkpoints.Checkpointer(str(workdir))
  restored = ckpt.restore(jax.tree.map(jnp.zeros_like, state))  # Falls back to step 1.
  ckpt.close()
  assert not marker.exists()
  assert jnp.array_equal(restored['w'], state['w'])
  assert (workdir / 'checkpoints_unreadable' / '2').is_dir()


@pytest.mark.parametrize(
  'record',
  [
    {'input': "__import__('pathlib').Path('{m}').touch()", 'target': 'x'},
    {'input': 'a', 'target': 'b', '__reduce__': "pathlib.Path('{m}').touch", 'py/object': 'os'},
  ],
)
def test_a_data_file_is_only_parsed(tmp_path, record):
  marker = tmp_path / 'executed'
  record = {k: v.replace('{m}', str(marker)) for k, v in record.items()}
  path = tmp_path / 'data.jsonl'
  path.write_text(json.dumps(record) + '\n', encoding='utf-8')
  (pair,) = data.load_jsonl(str(path))
  assert (pair.input, pair.target) == (record['input'], record['target'])
  assert not marker.exists()
