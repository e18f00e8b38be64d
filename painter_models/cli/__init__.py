"""The console scripts (stage 6): `neural-painters` (paint.py) and `neural-painters-strokes` (strokes.py).
May import: every stage.
"""
