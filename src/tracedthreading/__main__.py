"""``python -m tracedthreading``: see :mod:`tracedthreading._cli`."""
import sys
from tracedthreading._cli import main
sys.exit(main())
