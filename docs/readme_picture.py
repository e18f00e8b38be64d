"""The README's picture from the files the README's first command writes (run it in that folder):

    python docs/readme_picture.py [FOLDER]      # -> docs/images/readme_painting.png

The photograph, the painting (256 px) and a 256 px detail of the 4x MyPaint re-render (the face)."""
import os
import sys

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(folder: str = ".") -> None:
    painting = Image.open(os.path.join(folder, "painting.png")).convert("RGB")
    big = Image.open(os.path.join(folder, "painting_mypaint.png")).convert("RGB")
    w, h = painting.size
    photo = Image.open(os.path.join(REPO, "example_workflows", "input", "neural_painters_astronaut.jpg"))
    scale = big.size[0] / w
    detail = big.crop((round(300 / 4 * scale), 0, round(300 / 4 * scale) + w, h))   # the face
    out = Image.new("RGB", (3 * w + 20, h), "white")
    for i, image in enumerate((photo.convert("RGB").resize((w, h), Image.LANCZOS), painting, detail)):
        out.paste(image, (i * (w + 10), 0))
    out.save(os.path.join(REPO, "docs", "images", "readme_painting.png"))


if __name__ == "__main__":
    main(*sys.argv[1:])
