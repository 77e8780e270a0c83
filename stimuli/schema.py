"""Column names of the build manifest and the stimulus manifest (paradigm §4). Columns may be
added, never renamed."""

BUILD_MANIFEST_COLUMNS = ("image", "map", "image_id", "category", "class_index")

STIMULUS_MANIFEST_COLUMNS = (
    "stimulus_id", "file", "image_id", "category", "class_index", "level_index",
    "level_percent", "n_revealed", "budget", "centroid_dx", "centroid_dy", "seed", "sha256",
)

CATEGORIES = ("animal", "non-animal")

# ImageNet-1k class indices 0..397 (n01440764 tench .. n02655020 puffer) are animals (paradigm §1).
ANIMAL_CLASS_MAX = 397
