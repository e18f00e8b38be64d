"""Painting: strokes on a canvas, and finding the strokes of a painting (stage 4).

Owns the painting settings and their checks (settings.py), the differentiable canvas (canvas.py,
blending.py), palettes (palette.py), where new strokes start (seeding.py), the optimiser
(optimize.py: `paint`) and the stroke predictor that proposes all of a painting's strokes at once
(predictor.py: the network and its files; predict.py: coarse to fine over the canvas).
May import: the base modules, brush/, painter/ and objectives/.
"""
