"""The brush: what a stroke is and the painting programs that draw it (stage 1).

Owns the action layout (actions.py), the StrokeSet (strokes.py), MyPaint through ctypes (mypaint/:
the library, the stroke program, the canvas, measuring a brush), the torch rasteriser (raster.py),
MyPaint painting a StrokeSet at any scale (rerender.py) and in the optimiser's loop (real_brush.py).
May import: the base modules (painter_models.files, limits, images, metrics) only.
"""
