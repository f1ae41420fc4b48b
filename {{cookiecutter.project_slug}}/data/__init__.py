"""Token ids: prepare.py (text -> data/processed), splits.py, dataset.py and the objectives'
batch makers; download.py fetches public text into data/raw."""
