"""Pure Python/numpy/pyarrow building blocks of the AudioSet build. Never imports apache_beam."""
