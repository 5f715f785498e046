"""The pytest plugin (``pytest11`` entry point); off unless enabled with ``--tracedthreading``."""
