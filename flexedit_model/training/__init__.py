"""FlexEdit training, kept apart from the model: data (``data.py``), loss (``losses.py``) and loop (``loop.py``)."""
