"""Training-time tools for the trained mention detector (``xned detector``)."""
