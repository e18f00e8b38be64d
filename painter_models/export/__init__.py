"""What leaves the core as files: stroke JSON (stroke_file.py, png16.py), SVG (svg.py), time-lapses
(timelapse.py), image files (image_files.py) and the exports of a painting in one call (exports.py) (stage 5).
May import: every stage below it (base, brush/, painter/, objectives/, painting/).
"""
