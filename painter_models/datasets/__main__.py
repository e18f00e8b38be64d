"""python -m painter_models.datasets: the neural-painters-dataset command line."""
import sys

from .cli import main

sys.exit(main())
