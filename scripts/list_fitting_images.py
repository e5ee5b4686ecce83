"""Write ``data/crowd_fitting_images.txt``: the SHA-256 and a pixel hash of every mask-scenes photo in the train
split, the photos the crowd finder's passes and fusion, its refiner and the mask-state CNN were fitted on.

    python scripts/list_fitting_images.py

``periface eval detect`` reads the list to report, beside every image, the images periface never saw in fitting,
whatever they are named in the set being evaluated.
"""

from __future__ import annotations

import sys

from periface.evaluation.datasets import require_datasets
from periface.evaluation.detect_eval import FITTING_IMAGES, write_fitting_list
from periface.evaluation.voc import read_scenes, split_of


def main() -> int:
    scenes = [s for s in read_scenes(require_datasets() / "mask-scenes") if split_of(s.image.name) == "train"]
    write_fitting_list(scenes)
    print(f"{FITTING_IMAGES}: {len(scenes)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
