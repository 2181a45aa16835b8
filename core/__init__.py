"""The shared vocabulary of regiond, at the bottom of every import chain.

Frame and Camera (frames.py), RegionSet and the region-label rule (regionset.py), Partition
(regions that never overlap, as a label map: partition.py), COCO RLE (rle.py), the NYU40 /
ScanNet label tables, label PNGs and their resampling (label_spaces.py), the one label-map
scorer (confusion.py: IoU, mIoU, ScanNet's 20-class protocol), region and label pictures
(viz.py), stage timers (timing.py), and the errors callers act on (errors.py). Plain data and
numpy; nothing here imports the daemon, the sources or the clients, so all of them can import it.
"""
