"""The neural painter: a generator that imitates a painting program, its critic and their files (stage 2).

Owns the networks and their validated configs (model.py), painter files (checkpoint.py) and the
painters shipped in painter_models/weights/ (shipped.py).
May import: the base modules and brush/.
"""
