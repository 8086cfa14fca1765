"""quiet_start: TensorFlow's start-up notices kept off stderr, anything else written during its import kept."""

import subprocess
import sys
import textwrap

from quasar_core.quiet_start import without_notices

NOTICE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
          "I0000 00:00:1796230740.261444    8300 port.cc:153] oneDNN custom operations are on. You may see "
          "slightly different numerical results.\n")


def test_without_notices_keeps_every_other_line_in_order():
    assert without_notices(f"first\n{NOTICE}second\n") == "first\nsecond\n"
    assert without_notices("") == ""


def _run(code: str, *, path=None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": ":".join([*(path or []), *sys.path])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_stand_in_tensorflow_loses_its_notices_but_not_its_errors(tmp_path):
    """A package named tensorflow that writes to file descriptor 2 as the C++ libraries do."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(f"import os, sys\nos.write(2, {NOTICE.encode()!r})\n"
                                      "os.write(2, b'a real problem in a library\\n')\n"
                                      "sys.stderr.write('a Python warning\\n')\nVALUE = 42\n")
    done = _run("""
        import sys
        from quasar_core.quiet_start import quiet_tensorflow_start
        quiet_tensorflow_start()
        import tensorflow
        sys.stderr.write('after\\n')
        print(tensorflow.VALUE, type(tensorflow.__loader__).__name__)
    """, path=[str(tmp_path)])
    assert done.returncode == 0, done.stderr
    assert done.stderr == "a real problem in a library\na Python warning\nafter\n"
    assert done.stdout.split() == ["42", "SourceFileLoader"]  # the real loader, nothing of the filter left


def test_the_real_tensorflow_starts_without_notices():
    done = _run("""
        import os
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        from quasar_core.quiet_start import quiet_tensorflow_start
        quiet_tensorflow_start()
        import keras  # imports tensorflow first
        import tensorflow as tf
        print(int(tf.reduce_sum(tf.constant([1, 2]))))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    assert without_notices(done.stderr) == done.stderr, done.stderr
