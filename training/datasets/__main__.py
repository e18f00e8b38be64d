"""python -m neural_painters_training.datasets: the neural-painters-dataset command line."""
import sys

from .cli import main

sys.exit(main())
