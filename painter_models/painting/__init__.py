"""Painting: strokes on a canvas, and finding the strokes of a painting (stage 4).

Owns the painting settings and their checks (settings.py), the differentiable canvas (canvas.py,
blending.py), palettes (palette.py), where new strokes start (seeding.py) and the optimiser
(optimize.py: `paint`).
May import: the base modules, brush/, painter/ and objectives/.
"""
